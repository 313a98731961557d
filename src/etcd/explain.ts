import {
  EtcdAuthenticationFailedError,
  EtcdPermissionDeniedError,
  GRPCDeadlineExceededError,
  GRPCUnavailableError,
} from 'etcd3';
import {
  AuthError,
  CompactedError,
  ConnectionError,
  EtcdError,
  PermissionError,
  ShieldError,
} from '../errors';
import type { Config } from '../config/config';

export interface ErrorContext {
  config: Config;
  /** What we were doing, e.g. "read", "write", "delete". */
  action: string;
  prefix?: string;
}

/**
 * Turns an etcd3 client error into one of our typed errors. The client
 * rebuilds errors from message text, so we classify by class and message.
 */
export function explainEtcdError(err: unknown, ctx: ErrorContext): ShieldError {
  if (err instanceof ShieldError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const { config } = ctx;
  const where = config.endpoints.join(', ');
  const user = config.username !== undefined ? `user "${config.username}"` : 'the client';
  const scope = ctx.prefix ? `keys under prefix ${JSON.stringify(ctx.prefix)}` : 'the whole keyspace';

  if (err instanceof EtcdAuthenticationFailedError || /authentication failed/.test(message)) {
    return new AuthError(
      `etcd at ${where} rejected ${user}: wrong user name or password`,
      'check username and password (etcdctl --user NAME user get NAME shows whether the user exists)',
      { cause: err },
    );
  }
  if (/user name is empty/.test(message)) {
    return new AuthError(
      `etcd at ${where} has authentication enabled, but no user was given`,
      'set auth to "Role-Based Authentication" (or --user NAME:PASSWORD) with a user that may read the prefix',
      { cause: err },
    );
  }
  if (/authentication is not enabled/.test(message)) {
    return new AuthError(
      `a user was given, but etcd at ${where} does not have authentication enabled`,
      'leave auth empty (and drop the user), or run `etcdctl auth enable` on the cluster',
      { cause: err },
    );
  }
  if (err instanceof EtcdPermissionDeniedError || /permission denied/.test(message)) {
    return new PermissionError(
      `etcd refused to let ${user} ${ctx.action} ${scope}: permission denied`,
      `grant the user's role ${ctx.action === 'read' ? 'read' : 'readwrite'} on that prefix (etcdctl role grant-permission --prefix ROLE ${ctx.action === 'read' ? 'read' : 'readwrite'} PREFIX)`,
      { cause: err },
    );
  }
  if (/required revision has been compacted/.test(message)) {
    return new CompactedError(
      'etcd compacted the revision this backup was reading while it ran, so a consistent copy is not possible',
      'run the backup again; if it keeps happening, lengthen the auto-compaction retention',
      { cause: err },
    );
  }
  if (/database space exceeded|NOSPACE/i.test(message)) {
    return new EtcdError(
      `etcd at ${where} is out of space (NOSPACE alarm: the backend quota is exceeded) and refuses writes`,
      'free space: compact old revisions (etcdctl compact REV), defragment (etcdctl defrag), then clear the alarm (etcdctl alarm disarm); or raise --quota-backend-bytes',
      { cause: err },
    );
  }
  if (
    err instanceof GRPCDeadlineExceededError ||
    err instanceof GRPCUnavailableError ||
    /BrokenCircuit|No connection established|failed to connect|ECONNREFUSED|Deadline exceeded/i.test(message)
  ) {
    return new ConnectionError(
      `no answer from etcd at ${where} within ${config.timeoutMs / 1000} s while trying to ${ctx.action} (${firstLine(message)})`,
      'check that etcd is running and reachable on those addresses and that the scheme (http/https) is right; raise timeout if the cluster is slow',
      { cause: err },
    );
  }
  return new EtcdError(`etcd at ${where} failed to ${ctx.action}: ${firstLine(message)}`, undefined, { cause: err });
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.replace(/^\w*Error: /, '');
}
