import { X509Certificate } from 'node:crypto';
import {
  EtcdAuthenticationFailedError,
  EtcdPermissionDeniedError,
  EtcdUserNotFoundError,
  GRPCDeadlineExceededError,
  GRPCUnavailableError,
} from 'etcd3/lib/errors';
import { AuthError, CompactedError, ConnectionError, EtcdError, PermissionError, ShieldError, TlsError } from '../errors';
import type { Config } from '../config/config';
import { commonName, subject } from '../config/pem';
import { isOverloaded, MemberSkipped, shortGrpcMessage, tlsProblem } from './classify';

export interface ErrorContext {
  config: Config;
  /** What we were doing, e.g. "read", "write", "delete". */
  action: string;
  prefix?: string;
  /** What the action was done to, when not keys: "the member", or "" for none ("connect"). Default: the prefix's keys, or the whole keyspace. */
  object?: string;
}

function certName(pem: string | undefined): string {
  if (!pem) return '';
  try {
    return ` (${subject(new X509Certificate(pem))})`;
  } catch {
    return '';
  }
}

/** etcd uses a client certificate's common name as the user when no password is given. */
function certUser(config: Config): string | undefined {
  if (!config.clientCert || config.username !== undefined) return undefined;
  try {
    return commonName(new X509Certificate(config.clientCert));
  } catch {
    return undefined;
  }
}

/**
 * Turns an etcd3 client error into one of our typed errors. The client
 * rebuilds errors from message text, so we classify by class and message.
 * Messages name users, prefixes and endpoints, never a password or key.
 */
export function explainEtcdError(err: unknown, ctx: ErrorContext): ShieldError {
  if (err instanceof ShieldError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const { config } = ctx;
  const where = config.endpoints.join(', ');
  const cn = certUser(config);
  const user = config.username !== undefined ? `user "${config.username}"` : cn ? `user "${cn}" (the client certificate's common name)` : 'the client';
  const scope = ctx.object ?? (ctx.prefix ? `keys under prefix ${JSON.stringify(ctx.prefix)}` : 'the whole keyspace');
  // "read keys under prefix "/a"", "read the status of the member", "connect".
  const doing = scope ? `${ctx.action} ${scope}` : ctx.action;
  const detail = shortGrpcMessage(message);

  // TLS first: these arrive as "unavailable" errors but never heal by retrying.
  const tls = tlsProblem(err, config.secure);
  if (tls === 'clientCertExpired') {
    return new AuthError(
      `etcd at ${where} refused the client certificate${certName(config.clientCert)}: it has expired`,
      'issue a new client certificate from the CA etcd trusts (its --trusted-ca-file)',
      { cause: err },
    );
  }
  if (tls === 'clientCertRefused') {
    if (!config.clientCert) {
      return new AuthError(
        `etcd at ${where} requires a client certificate (it runs with --client-cert-auth), and none was given`,
        'set auth to "Certificate-Based Authentication" (or "Both") with client_cert and client_key (--cert/--key on the command line)',
        { cause: err },
      );
    }
    return new AuthError(
      `etcd at ${where} refused the client certificate${certName(config.clientCert)}: it is not signed by a CA that etcd trusts, or not made for client authentication`,
      'use a client certificate issued by the CA in etcd\'s --trusted-ca-file, with the clientAuth extended key usage',
      { cause: err },
    );
  }
  if (tls === 'serverCertWrongName') {
    return new TlsError(
      `the server certificate of etcd at ${where} is not issued for that address (${detail})`,
      'connect with a host name or IP address the certificate lists, or reissue the server certificate with it in subjectAltName',
      { cause: err },
    );
  }
  if (tls === 'serverCertExpired') {
    return new TlsError(
      `the server certificate of etcd at ${where} has expired or is not yet valid (${detail})`,
      'renew the etcd server certificates, or check this machine\'s clock',
      { cause: err },
    );
  }
  if (tls === 'serverCertUntrusted') {
    return new TlsError(
      config.caCert
        ? `the server certificate of etcd at ${where} is not signed by ca_cert${certName(config.caCert)}: they do not match (${detail})`
        : `the server certificate of etcd at ${where} is not signed by any CA this system trusts (${detail})`,
      'set ca_cert (--cacert) to the CA that signed the etcd server certificates; in a test lab, insecure_skip_verify skips the check',
      { cause: err },
    );
  }
  if (tls === 'notTls') {
    return new TlsError(
      `etcd at ${where} does not speak TLS (${detail}); for plain http, write http://`,
      'if etcd serves plain http, write the endpoints with http://',
      { cause: err },
    );
  }

  if (err instanceof EtcdAuthenticationFailedError || /authentication failed/.test(message)) {
    return new AuthError(
      `etcd at ${where} rejected ${user}: wrong user name or password`,
      'check username and password (etcdctl --user NAME user get NAME shows whether the user exists)',
      { cause: err },
    );
  }
  if (err instanceof EtcdUserNotFoundError || /user name not found/.test(message)) {
    return new AuthError(
      `etcd at ${where} has no ${user}`,
      cn
        ? `create the user (etcdctl user add ${cn}) and grant it a role, or use "Both" with a user and password`
        : 'check the user name (etcdctl user list)',
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
      `etcd refused to let ${user} ${doing}: permission denied`,
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
  if (isOverloaded(err)) {
    return new EtcdError(
      `etcd at ${where} is overloaded and refused to ${doing} (${detail}): more than 5000 of its committed entries are waiting to be applied`,
      'wait until etcd catches up (a defragmentation or a burst of writes by other clients is the usual cause), then run the same command again',
      { cause: err },
    );
  }
  if (/etcdserver: (no leader|leader changed|request timed out|unhealthy cluster|server stopped)/.test(message)) {
    return new ConnectionError(
      `etcd at ${where} could not ${doing}: the cluster has no working leader (${detail})`,
      'check that a majority of the members are running and can reach each other (etcdctl endpoint status --cluster)',
      { cause: err },
    );
  }
  const deadline = err instanceof GRPCDeadlineExceededError || /Deadline exceeded/i.test(message);
  if (deadline || err instanceof GRPCUnavailableError || err instanceof MemberSkipped || /BrokenCircuit|No connection established|failed to connect|ECONNREFUSED/i.test(message)) {
    const plainHint = config.secure ? '' : '; if etcd serves TLS, write the endpoints with https://';
    // A TLS port drops a plain connection at once; say so where the operator looks.
    const maybeTls = !config.secure && !deadline && !/ECONNREFUSED|EHOSTUNREACH|ENOTFOUND/.test(message) ? '; if etcd serves TLS, write https://' : '';
    return new ConnectionError(
      deadline
        ? `no answer from etcd at ${where} within ${config.timeoutMs / 1000} s while trying to ${doing} (${detail})`
        : `cannot reach etcd at ${where} while trying to ${doing} (${detail}${maybeTls})`,
      `check that etcd is running and reachable on those addresses${plainHint}; raise timeout if the cluster is slow`,
      { cause: err },
    );
  }
  return new EtcdError(`etcd at ${where} failed to ${doing}: ${detail}`, undefined, { cause: err });
}
