/**
 * The one list of configuration fields. SHIELD's `info`, the endpoint parser,
 * `validate`, the CLI flags, the etcdctl environment variables and the field
 * table in the README are all derived from it.
 */

/** Field types SHIELD's web UI understands. */
export type FieldType =
  | 'string'
  | 'password'
  | 'bool'
  | 'enum'
  | 'port'
  | 'abspath'
  | 'pem-x509'
  | 'pem-rsa-pk'
  | 'text';

export interface FieldCli {
  /** Long flag names without dashes; the first is the main one. */
  flags: string[];
  /** Placeholder for the flag's value; absent for a boolean switch. */
  value?: string;
  /** etcdctl-style environment variable read when the flag is absent. */
  env?: string;
  /** On the command line the value is a file path whose contents are the field. */
  file?: boolean;
  /** Help that differs on the command line (e.g. a path instead of PEM text). */
  help?: string;
}

export interface FieldSpec {
  name: string;
  type: FieldType;
  title: string;
  help: string;
  example?: string;
  default?: string;
  required?: boolean;
  enum?: readonly string[];
  secret?: boolean;
  cli: FieldCli;
}

export const AUTH_RBAC = 'Role-Based Authentication';
export const AUTH_CERT = 'Certificate-Based Authentication';
export const AUTH_BOTH = 'Both';
export const AUTH_VALUES = [AUTH_RBAC, AUTH_CERT, AUTH_BOTH] as const;

export const DEFAULT_TIMEOUT_SECONDS = 2;

export const BACKUP_MODES = ['logical', 'snapshot'] as const;
export type BackupMode = (typeof BACKUP_MODES)[number];

const PEM_CERT_EXAMPLE = '-----BEGIN CERTIFICATE-----\n(certificate)\n-----END CERTIFICATE-----';

export const FIELDS: readonly FieldSpec[] = [
  {
    name: 'url',
    type: 'string',
    title: 'etcd endpoints',
    help: 'Client URLs of the etcd members, separated by commas; https:// turns on TLS.',
    example: 'https://10.0.0.11:2379,https://10.0.0.12:2379',
    required: true,
    cli: { flags: ['url', 'endpoints'], value: 'urls', env: 'ETCDCTL_ENDPOINTS' },
  },
  {
    name: 'timeout',
    type: 'string',
    title: 'Timeout (seconds)',
    help: 'How long to wait for an endpoint to connect and for each request to answer, in seconds; it never limits the length of a whole backup or restore.',
    example: '5',
    default: String(DEFAULT_TIMEOUT_SECONDS),
    cli: {
      flags: ['timeout', 'dial-timeout'],
      value: 'seconds',
      env: 'ETCDCTL_DIAL_TIMEOUT',
      help: 'Seconds to wait for a connection and for each request (also 500ms, 2s, 1m).',
    },
  },
  {
    name: 'auth',
    type: 'enum',
    title: 'Authentication',
    help: 'How etcd-shield proves who it is: user and password, a client certificate, or both; leave it empty when the cluster needs neither.',
    example: AUTH_RBAC,
    enum: AUTH_VALUES,
    cli: {
      flags: ['auth'],
      value: 'mode',
      help: 'none, rbac, cert or both (or the SHIELD names); guessed from --user/--cert when omitted.',
    },
  },
  {
    name: 'username',
    type: 'string',
    title: 'Username',
    help: 'etcd user for role-based authentication.',
    example: 'backup',
    cli: {
      flags: ['username', 'user'],
      value: 'name[:password]',
      env: 'ETCDCTL_USER',
      help: 'etcd user for role-based authentication; "name:password" sets both, as etcdctl does.',
    },
  },
  {
    name: 'password',
    type: 'password',
    title: 'Password',
    help: 'Password of the etcd user.',
    example: 'correct-horse',
    secret: true,
    cli: { flags: ['password'], value: 'password', env: 'ETCDCTL_PASSWORD' },
  },
  {
    name: 'client_cert',
    type: 'pem-x509',
    title: 'Client certificate',
    help: 'PEM contents of the client certificate that etcd trusts, for certificate-based authentication.',
    example: PEM_CERT_EXAMPLE,
    cli: {
      flags: ['cert'],
      value: 'file',
      env: 'ETCDCTL_CERT',
      file: true,
      help: 'Path of the PEM client certificate.',
    },
  },
  {
    name: 'client_key',
    type: 'pem-rsa-pk',
    title: 'Client private key',
    help: 'PEM contents of the private key of the client certificate (RSA or EC, PKCS#1, SEC1 or PKCS#8).',
    example: '-----BEGIN PRIVATE KEY-----\n(key)\n-----END PRIVATE KEY-----',
    secret: true,
    cli: {
      flags: ['key'],
      value: 'file',
      env: 'ETCDCTL_KEY',
      file: true,
      help: 'Path of the PEM private key of the client certificate.',
    },
  },
  {
    name: 'ca_cert',
    type: 'pem-x509',
    title: 'CA certificate',
    help: 'PEM contents of the CA certificate that signed the etcd server certificates; the system CAs are used when empty.',
    example: PEM_CERT_EXAMPLE,
    cli: {
      flags: ['cacert'],
      value: 'file',
      env: 'ETCDCTL_CACERT',
      file: true,
      help: 'Path of the PEM CA certificate that signed the etcd server certificates.',
    },
  },
  {
    name: 'insecure_skip_verify',
    type: 'bool',
    title: 'Skip server certificate check',
    help: 'Accept any server certificate without checking its CA or host names, for test labs only: the traffic is still encrypted, but anyone in the network path can pose as etcd and read it; every run prints a warning.',
    default: 'false',
    cli: {
      flags: ['insecure-skip-tls-verify'],
      env: 'ETCDCTL_INSECURE_SKIP_TLS_VERIFY',
      help: 'Accept any server certificate (test labs only; a warning is printed).',
    },
  },
  {
    name: 'overwrite',
    type: 'bool',
    title: 'Overwrite on restore',
    help: 'On restore, also delete the keys under the prefix that the archive does not hold, once every key of the archive has been written; when off, restore only adds and updates keys.',
    default: 'false',
    cli: { flags: ['overwrite'] },
  },
  {
    name: 'prefix',
    type: 'string',
    title: 'Key prefix',
    help: 'Back up or restore only the keys that begin with this string (a plain string match: /app also matches /apple); empty means every key.',
    example: '/registry/',
    cli: { flags: ['prefix'], value: 'prefix' },
  },
  {
    name: 'mode',
    type: 'enum',
    title: 'Backup mode',
    help: 'logical reads the keys (restorable online, whole or by prefix); snapshot streams etcd\'s own database snapshot from one member, exactly what `etcdctl snapshot save` writes (whole keyspace only, so prefix must be empty). Restore reads either.',
    default: 'logical',
    enum: BACKUP_MODES,
    cli: { flags: ['mode'], value: 'mode', help: 'logical (the default) or snapshot: etcd\'s own database snapshot, as `etcdctl snapshot save` writes it.' },
  },
];
