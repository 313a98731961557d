import { isRecoverableError } from 'etcd3/lib/errors';

/**
 * Every test of a raw etcd3/grpc-js error lives here. The client rebuilds
 * errors from message text and loses the gRPC code, so these read messages.
 * explain.ts turns what they find into typed errors; connect.ts uses them
 * to decide what to retry.
 */

/** Thrown instead of calling a member that just failed while others may answer. */
export class MemberSkipped extends Error {
  constructor(host: string, last: string) {
    super(`${host} is skipped after failing (${last})`);
  }
}

export type TlsProblem = 'clientCertExpired' | 'clientCertRefused' | 'serverCertWrongName' | 'serverCertExpired' | 'serverCertUntrusted' | 'notTls';

// What OpenSSL and Node say when a handshake fails, by who refused whom; the
// first match wins, so the expired-certificate alert comes before the generic ones.
const TLS_PROBLEMS: [TlsProblem, RegExp][] = [
  ['clientCertExpired', /alert certificate expired|SSL alert number 45\b/i],
  ['clientCertRefused', /alert (bad certificate|certificate required|unknown ca|certificate unknown|unsupported certificate|access denied)|SSL alert number (42|43|46|48|49|116)\b/i],
  ['serverCertWrongName', /altnames|ERR_TLS_CERT_ALTNAME_INVALID/i],
  ['serverCertExpired', /certificate has expired|CERT_HAS_EXPIRED|certificate is not yet valid/i],
  [
    'serverCertUntrusted',
    /unable to verify the first certificate|unable to get local issuer certificate|unable to get issuer certificate|self[- ]signed certificate|certificate signature failure|UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT/i,
  ],
  // A plain-http etcd answers a ClientHello with bytes that are not TLS, or
  // simply resets the connection; which one the client sees is a race.
  ['notTls', /disconnected before secure TLS connection|wrong version number|packet length too long|http request|read ECONNRESET/i],
];

/** Anything else a handshake can fail with; none of it heals by retrying. */
const OTHER_TLS = /SSL|TLS|certificate|self[- ]signed|altnames|alert/i;

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * Which TLS handshake failure this is. A reset only means "not TLS" when we
 * spoke TLS (`secure`): on plain http it is an ordinary dropped connection.
 */
export function tlsProblem(err: unknown, secure: boolean): TlsProblem | undefined {
  const message = messageOf(err);
  const found = TLS_PROBLEMS.find(([, re]) => re.test(message))?.[0];
  return found === 'notTls' && !secure ? undefined : found;
}

/** TLS and certificate failures do not heal by trying again. */
export function isTlsFailure(err: unknown): boolean {
  return OTHER_TLS.test(messageOf(err)) || tlsProblem(err, false) !== undefined;
}

/**
 * etcd refuses proposals ("etcdserver: too many requests") while it has
 * committed more than 5000 entries it has not applied yet.
 */
export function isOverloaded(err: unknown): boolean {
  return err instanceof Error && /too many requests/.test(err.message);
}

/** etcd's own request timeout, or the client's deadline. */
export function isTimeout(err: unknown): boolean {
  return /request timed out|deadline exceeded/i.test(messageOf(err));
}

/** Worth trying again, on another member or after a pause. */
export function isTransient(err: unknown): boolean {
  if (err instanceof MemberSkipped) return !isTlsFailure(err);
  if (!(err instanceof Error)) return false;
  if (isOverloaded(err)) return true;
  return isRecoverableError(err) && !isTlsFailure(err);
}

/** A failure of the member or the path to it, not an answer etcd gave (permission, compaction...). */
export function isMemberFailure(err: unknown): boolean {
  return err instanceof Error && isRecoverableError(err) && !/etcdserver:/.test(err.message);
}

/**
 * etcd answers "request is too large" up to --max-request-bytes, and its
 * gRPC layer RESOURCE_EXHAUSTED a little above that.
 */
export function isTooLarge(err: unknown): boolean {
  return /request is too large|larger than max/.test(messageOf(err));
}

/** A lease grant that an earlier run of the same restore already made. */
export function isLeaseExists(err: unknown): boolean {
  return /lease already exists/.test(messageOf(err));
}

/** grpc-js messages carry a status prefix and a resolution note; keep the cause. */
export function shortGrpcMessage(message: string): string {
  return message
    .split('\n')[0]!
    .replace(/^\w*Error: /, '')
    .replace(/^\d+ [A-Z_]+: /, '')
    .replace(/^No connection established\. Last error: (Error: )?/, '')
    .replace(/\s*(\(\d{4}-\d\d-\d\dT[^)]*\))?\.? Resolution note:.*$/, '')
    .trim();
}
