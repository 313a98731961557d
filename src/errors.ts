/**
 * Every failure etcd-shield reports is one of these. Each kind carries the
 * SHIELD exit code it maps to and a hint that tells the operator what to do.
 */
export const ExitCode = {
  ok: 0,
  usage: 1,
  unsupportedAction: 2,
  externalCommand: 3,
  failure: 4,
  badEndpointJson: 10,
  missingKey: 11,
  missingField: 12,
  wrongType: 13,
} as const;

export abstract class ShieldError extends Error {
  abstract readonly exitCode: number;
  constructor(message: string, readonly hint?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

export class UsageError extends ShieldError {
  readonly exitCode = ExitCode.usage;
}

export class UnsupportedActionError extends ShieldError {
  readonly exitCode = ExitCode.unsupportedAction;
}

export class BadEndpointJsonError extends ShieldError {
  readonly exitCode = ExitCode.badEndpointJson;
}

export class MissingFieldError extends ShieldError {
  readonly exitCode = ExitCode.missingField;
}

export class WrongTypeError extends ShieldError {
  readonly exitCode = ExitCode.wrongType;
}

/** Anything SHIELD calls a plugin failure (exit 4). */
export abstract class FailureError extends ShieldError {
  readonly exitCode = ExitCode.failure;
}

/** A field has the right type but a value we cannot use. */
export class ConfigError extends FailureError {}

/** No endpoint answered within the timeout. */
export class ConnectionError extends FailureError {}

/** etcd refused the credentials. */
export class AuthError extends FailureError {}

/** The credentials are fine but the user may not touch the keys. */
export class PermissionError extends FailureError {}

/** The pinned revision was compacted while we read. */
export class CompactedError extends FailureError {}

/** Any other error etcd returned. */
export class EtcdError extends FailureError {}

/** The archive is malformed, truncated or altered. */
export class ArchiveError extends FailureError {}

/** The operator (or SHIELD) stopped us with a signal. */
export class CancelledError extends FailureError {}

/** Whoever reads our stdout went away (EPIPE). */
export class OutputClosedError extends FailureError {}

/** A local file could not be read or written. */
export class FileError extends FailureError {}
