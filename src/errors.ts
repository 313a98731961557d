import { ExitCode } from './exit-code';

/**
 * Every failure etcd-shield reports is one of these. ERROR_KINDS is the one
 * table that maps each kind to its SHIELD exit code, the HTTP status a
 * service answers with, and the hint used when the thrower has none more
 * specific.
 */
export { ExitCode };

export interface ErrorKind {
  exitCode: number;
  httpStatus: number;
  hint: string;
}

export const ERROR_KINDS = {
  usage: { exitCode: ExitCode.usage, httpStatus: 400, hint: 'run with --help for usage' },
  unsupportedAction: { exitCode: ExitCode.unsupportedAction, httpStatus: 405, hint: 'use info, validate, backup or restore' },
  badEndpointJson: { exitCode: ExitCode.badEndpointJson, httpStatus: 400, hint: 'pass one JSON object, e.g. -e \'{"url":"http://127.0.0.1:2379"}\'' },
  missingField: { exitCode: ExitCode.missingField, httpStatus: 400, hint: 'set the field in the configuration' },
  wrongType: { exitCode: ExitCode.wrongType, httpStatus: 400, hint: 'fix the field\'s type in the configuration' },
  config: { exitCode: ExitCode.failure, httpStatus: 400, hint: 'fix the configuration; `etcd-shield validate` checks every field and the connection' },
  connection: { exitCode: ExitCode.failure, httpStatus: 503, hint: 'check that etcd is running and reachable on those addresses; raise timeout if the cluster is slow' },
  tls: { exitCode: ExitCode.failure, httpStatus: 502, hint: 'check the endpoints\' scheme and the certificates on both sides' },
  auth: { exitCode: ExitCode.failure, httpStatus: 502, hint: 'check the user, password and client certificate' },
  permission: { exitCode: ExitCode.failure, httpStatus: 502, hint: 'grant the user\'s role access to the prefix' },
  compacted: { exitCode: ExitCode.failure, httpStatus: 502, hint: 'run the backup again; if it keeps happening, lengthen the auto-compaction retention' },
  etcd: { exitCode: ExitCode.failure, httpStatus: 502, hint: 'check the etcd members\' logs, then run the same command again' },
  archive: { exitCode: ExitCode.failure, httpStatus: 422, hint: 'the archive is damaged or incomplete; use another backup' },
  cancelled: { exitCode: ExitCode.failure, httpStatus: 503, hint: 'run it again when it may finish' },
  outputClosed: { exitCode: ExitCode.failure, httpStatus: 500, hint: 'the process that stores the backup stopped; check its own error message' },
  file: { exitCode: ExitCode.failure, httpStatus: 500, hint: 'check the path, its permissions and free space' },
  store: { exitCode: ExitCode.failure, httpStatus: 502, hint: 'check the store URL, that the bucket or directory exists, and the credentials' },
  encryption: { exitCode: ExitCode.failure, httpStatus: 422, hint: 'give the age identity (--identity FILE) whose recipient the backup was encrypted to' },
  notFound: { exitCode: ExitCode.failure, httpStatus: 404, hint: 'run `etcd-shield list --from URL` to see the backups the store holds' },
  busy: { exitCode: ExitCode.failure, httpStatus: 409, hint: 'wait for the running backup to finish; GET /api/jobs shows what runs' },
  unauthenticated: { exitCode: ExitCode.usage, httpStatus: 401, hint: 'send the service\'s API token as "Authorization: Bearer TOKEN"' },
  forbidden: { exitCode: ExitCode.usage, httpStatus: 403, hint: 'the token does not match the one the service was configured with (token, token_env or token_file)' },
  restoreInterrupted: { exitCode: ExitCode.failure, httpStatus: 502, hint: 'running the same restore again converges' },
  unexpected: { exitCode: ExitCode.failure, httpStatus: 500, hint: 'run again with --debug for details, and report it as a bug' },
} as const satisfies Record<string, ErrorKind>;

export type ErrorKindName = keyof typeof ERROR_KINDS;

export abstract class ShieldError extends Error {
  abstract readonly kind: ErrorKindName;
  private readonly specificHint: string | undefined;

  constructor(message: string, hint?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.specificHint = hint;
  }

  /** What the operator should do: the thrower's own words, else the table's. */
  get hint(): string {
    return this.specificHint ?? ERROR_KINDS[this.kind].hint;
  }

  get exitCode(): number {
    return ERROR_KINDS[this.kind].exitCode;
  }

  get httpStatus(): number {
    return ERROR_KINDS[this.kind].httpStatus;
  }
}

export class UsageError extends ShieldError {
  readonly kind = 'usage';
}

export class UnsupportedActionError extends ShieldError {
  readonly kind = 'unsupportedAction';
}

export class BadEndpointJsonError extends ShieldError {
  readonly kind = 'badEndpointJson';
}

export class MissingFieldError extends ShieldError {
  readonly kind = 'missingField';
}

export class WrongTypeError extends ShieldError {
  readonly kind = 'wrongType';
}

/** A field has the right type but a value we cannot use. */
export class ConfigError extends ShieldError {
  readonly kind = 'config';
}

/** No endpoint answered within the timeout. */
export class ConnectionError extends ShieldError {
  readonly kind: ErrorKindName = 'connection';
}

/** A TLS handshake failed: a server certificate we cannot trust, or a plain-http server. */
export class TlsError extends ConnectionError {
  override readonly kind = 'tls';
}

/** etcd refused the credentials. */
export class AuthError extends ShieldError {
  readonly kind = 'auth';
}

/** The credentials are fine but the user may not touch the keys. */
export class PermissionError extends ShieldError {
  readonly kind = 'permission';
}

/** The pinned revision was compacted while we read. */
export class CompactedError extends ShieldError {
  readonly kind = 'compacted';
}

/** Any other error etcd returned. */
export class EtcdError extends ShieldError {
  readonly kind = 'etcd';
}

/** The archive is malformed, truncated or altered. */
export class ArchiveError extends ShieldError {
  readonly kind = 'archive';
}

/** The operator (or SHIELD) stopped us with a signal, or the caller aborted. */
export class CancelledError extends ShieldError {
  readonly kind = 'cancelled';
  /** What the stopped work could not undo, in words for the operator (an S3 upload it could not abort). */
  leftovers: string[] = [];
}

/** Whoever reads our output went away (EPIPE). */
export class OutputClosedError extends ShieldError {
  readonly kind = 'outputClosed';
}

/** A local file could not be read or written. */
export class FileError extends ShieldError {
  readonly kind = 'file';
}

/** A store (directory or S3) could not be reached, listed, read or written. */
export class StoreError extends ShieldError {
  readonly kind = 'store';
}

/** Encryption or decryption with age failed: a bad recipient, no identity, or an identity that does not match. */
export class EncryptionError extends ShieldError {
  readonly kind = 'encryption';
}

/** The store holds no backup that matches (none at all, no such name, none before that time). */
export class NotFoundError extends ShieldError {
  readonly kind = 'notFound';
}

/** The job is already running; a second run would overlap it. */
export class JobBusyError extends ShieldError {
  readonly kind = 'busy';
}

/** An API call that needs the token came without one. */
export class UnauthenticatedError extends ShieldError {
  readonly kind = 'unauthenticated';
}

/** An API call came with a token that is not the service's. */
export class ForbiddenError extends ShieldError {
  readonly kind = 'forbidden';
}

/**
 * A restore that failed or was stopped after it began writing. The counts
 * say what changed: at least `written` keys (etcd may apply a transaction
 * whose answer never arrives) and exactly `deleted`. No key is ever deleted
 * before every key of the archive was written.
 */
export class RestoreInterruptedError extends ShieldError {
  readonly kind = 'restoreInterrupted';

  constructor(
    readonly error: ShieldError,
    readonly written: number,
    readonly deleted: number,
  ) {
    super(
      `${error.message}; restore stopped after writing at least ${written} keys and deleting ${deleted}, and no key was deleted unless every key of the archive had been written`,
      `${error.hint}; running the same restore again converges`,
      { cause: error },
    );
  }

  override get exitCode(): number {
    return this.error.exitCode;
  }

  override get httpStatus(): number {
    return this.error.httpStatus;
  }
}

/** Anything that is not one of ours, wrapped so that every face reports it the same way. */
export class UnexpectedError extends ShieldError {
  readonly kind = 'unexpected';

  constructor(cause: unknown) {
    super(`unexpected error: ${cause instanceof Error ? cause.message : String(cause)}`, undefined, { cause });
  }
}

export function asShieldError(err: unknown): ShieldError {
  return err instanceof ShieldError ? err : new UnexpectedError(err);
}
