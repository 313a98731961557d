import type { FastifyReply } from 'fastify';
import { asShieldError, ShieldError, UsageError } from '../../errors';

/** The one error shape every route answers with. */
export interface ErrorBody {
  error: { kind: string; message: string; hint: string };
}

export function errorBody(err: ShieldError): ErrorBody {
  return { error: { kind: err.kind, message: err.message, hint: err.hint } };
}

/**
 * Our own errors keep their kind; fastify's client errors (a bad body, a
 * bad header) are usage errors; anything else is unexpected. The message
 * never carries a stack.
 */
export function httpError(err: unknown): ShieldError {
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  if (err instanceof ShieldError || !(err instanceof Error)) return asShieldError(err);
  if (typeof status === 'number' && status >= 400 && status < 500) return new UsageError(`bad request: ${err.message}`, 'see docs/service.md, "HTTP API", for what each route takes');
  return asShieldError(err);
}

export function sendError(reply: FastifyReply, err: ShieldError): FastifyReply {
  return reply.code(err.httpStatus).header('cache-control', 'no-store').send(errorBody(err));
}
