import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { ForbiddenError, UnauthenticatedError } from '../../errors';

/**
 * Who may start a run. With a token: only a request that carries it as a
 * Bearer token. Without one: only a request from this machine (loopback),
 * since anyone who reaches the port could otherwise start backups.
 */
export function checkRunAllowed(what: string, authorization: string | undefined, remoteAddress: string | undefined, token: string | undefined): void {
  if (token === undefined) {
    if (isLoopback(remoteAddress)) return;
    throw new ForbiddenError(
      `${what} came from ${remoteAddress ?? 'an unknown address'}, and without an API token the service accepts it only from loopback`,
      'configure a token (token_file or token_env) and send it as "Authorization: Bearer TOKEN"',
    );
  }
  const given = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '')?.[1];
  if (given === undefined) {
    throw new UnauthenticatedError(
      authorization === undefined ? `${what} needs the API token, and none was sent` : `${what} needs "Authorization: Bearer TOKEN"; the header sent has another form`,
    );
  }
  if (!sameSecret(given, token)) throw new ForbiddenError(`${what}: the Bearer token sent is not the service's API token`);
}

/** Compares digests, which have equal length, so the time taken tells nothing of the token. */
function sameSecret(a: string, b: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(a), digest(b));
}

export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (isIP(v4) === 4) return v4.startsWith('127.');
  return address === '::1';
}
