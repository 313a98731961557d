import * as v from 'valibot';
import { ConfigError, MissingFieldError, WrongTypeError } from '../errors';
import { AUTH_BOTH, AUTH_CERT, AUTH_RBAC, BACKUP_MODES, type BackupMode, DEFAULT_TIMEOUT_SECONDS, FIELDS, FieldSpec } from './fields';
import { clientUsageProblem, parseCertificate, parsePrivateKey } from './pem';
import { shieldBool } from './shield-bool';

export type AuthMode = 'none' | 'rbac' | 'cert' | 'both';

/** A configuration that has passed every check; the core works only from this. */
export interface Config {
  endpoints: string[];
  secure: boolean;
  timeoutMs: number;
  auth: AuthMode;
  username?: string;
  password?: string;
  clientCert?: string;
  clientKey?: string;
  caCert?: string;
  /** TLS without checking the server certificate (labs only). */
  insecureSkipVerify: boolean;
  overwrite: boolean;
  prefix: string;
  /** How backup reads the cluster: its keys (logical, also when absent) or a database snapshot from one member. */
  mode?: BackupMode;
}

/** Field values after type checking: strings, and booleans for bool fields. */
export type TypedFields = Record<string, string | boolean | undefined>;

export interface FieldCheck {
  field: string;
  ok: boolean;
  message: string;
}

const MAX_TIMEOUT_SECONDS = 3600;


const boolSchema = v.pipe(
  v.union([v.boolean(), v.number(), v.string()]),
  v.check((x) => typeof x === 'boolean' || x === 1 || x === 0 || (typeof x === 'string' && shieldBool(x) !== undefined), 'is not a boolean (use true or false)'),
  v.transform((x) => x === true || x === 1 || (typeof x === 'string' && shieldBool(x) === true)),
);

function schemaFor(field: FieldSpec): v.GenericSchema<unknown, string | boolean> {
  if (field.type === 'bool') return boolSchema;
  // The original plugin sent timeout as a string; numbers are accepted too.
  if (field.name === 'timeout') return v.pipe(v.union([v.string(), v.number()]), v.transform(String));
  return v.string('must be a string');
}

const FIELD_SCHEMAS = new Map(FIELDS.map((f) => [f.name, schemaFor(f)]));

export interface TypeCheckResult {
  fields: TypedFields;
  /** Keys SHIELD or the operator sent that no field has: warned about, not fatal. */
  unknown: string[];
  missing: FieldSpec[];
  wrongType: FieldCheck[];
}

/** Checks each field's type separately, so validate can report every problem. */
export function checkTypes(raw: Record<string, unknown>): TypeCheckResult {
  const result: TypeCheckResult = { fields: {}, unknown: [], missing: [], wrongType: [] };
  for (const [name, value] of Object.entries(raw)) {
    if (value === null || value === undefined) continue;
    const schema = FIELD_SCHEMAS.get(name);
    if (!schema) {
      result.unknown.push(name);
      continue;
    }
    const parsed = v.safeParse(schema, value);
    if (parsed.success) result.fields[name] = parsed.output;
    else {
      const field = FIELDS.find((f) => f.name === name);
      const expected = field?.type === 'bool' ? 'true or false' : 'a string';
      // A secret sent with the wrong type is still a secret.
      const shown = field?.secret ? `a ${Array.isArray(value) ? 'list' : typeof value} (value hidden)` : JSON.stringify(value);
      result.wrongType.push({ field: name, ok: false, message: `has the wrong type: ${shown} is not ${expected}` });
    }
  }
  const absent = (v: unknown) => v === undefined || v === null || v === '';
  result.missing = FIELDS.filter((f) => f.required && absent(raw[f.name]));
  return result;
}

/**
 * Type-checks a raw endpoint object (SHIELD JSON or CLI values). Missing
 * required fields and wrong types are SHIELD's exit codes 12 and 13.
 */
export function typeCheck(raw: Record<string, unknown>): { fields: TypedFields; unknown: string[] } {
  const { fields, unknown, missing, wrongType } = checkTypes(raw);
  const f = missing[0];
  if (f) {
    throw new MissingFieldError(
      `the required field "${f.name}" (${f.title}) is missing`,
      f.cli.env
        ? `set "${f.name}" in the target configuration, or --${f.cli.flags[0]} / ${f.cli.env} on the command line`
        : `set "${f.name}" in the target configuration`,
    );
  }
  const wrong = wrongType[0];
  if (wrong) throw new WrongTypeError(`field "${wrong.field}" ${wrong.message}`, `fix "${wrong.field}" in the configuration`);
  return { fields, unknown };
}

/** Parses the etcd endpoint list; throws with a reason an operator can act on. */
export function parseEndpoints(value: string): { endpoints: string[]; secure: boolean } {
  const parts = value.split(',').map((p) => p.trim());
  if (parts.some((p) => p === '')) throw new Error('has an empty entry between commas');
  const schemes = new Set<string>();
  const endpoints = parts.map((p) => {
    if (/\s/.test(p)) throw new Error(`entry "${p}" contains white space`);
    const m = /^(?:(https?):\/\/)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?\/?$/.exec(p);
    if (!m) throw new Error(`entry "${p}" is not host:port, http://host:port or https://host:port`);
    const [, scheme = 'http', host, port = '2379'] = m;
    if (Number(port) < 1 || Number(port) > 65535) throw new Error(`entry "${p}" has port ${port}, outside 1-65535`);
    schemes.add(scheme);
    return `${scheme}://${host}:${port}`;
  });
  if (schemes.size > 1) {
    throw new Error('mixes http:// and https:// endpoints; one cluster uses one scheme');
  }
  return { endpoints, secure: schemes.has('https') };
}

/** Seconds as a number, "2", "2.5", or etcdctl durations such as "500ms", "2s", "1m". */
export function parseTimeout(value: string): number {
  const m = /^\s*(-?\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(value);
  if (!m) throw new Error(`"${value}" is not a number of seconds (e.g. 2, 2.5, 500ms, 1m)`);
  const n = Number(m[1]);
  const ms = m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000;
  if (ms <= 0) throw new Error(`"${value}" must be more than zero`);
  if (ms > MAX_TIMEOUT_SECONDS * 1000) {
    throw new Error(`"${value}" is more than ${MAX_TIMEOUT_SECONDS} s; it is the patience per request, not for a whole backup`);
  }
  return Math.round(ms);
}

export function parseAuth(value: string | undefined): AuthMode {
  const v = (value ?? '').trim().toLowerCase();
  if (v === '' || v === 'none') return 'none';
  if (v === AUTH_RBAC.toLowerCase() || v === 'rbac') return 'rbac';
  if (v === AUTH_CERT.toLowerCase() || v === 'cert') return 'cert';
  if (v === AUTH_BOTH.toLowerCase() || v === 'both') return 'both';
  throw new Error(`"${value}" is not one of: "${AUTH_RBAC}", "${AUTH_CERT}", "${AUTH_BOTH}", or empty for none`);
}

const str = (v: string | boolean | undefined): string | undefined =>
  typeof v === 'string' && v !== '' ? v : undefined;

/**
 * Checks every field's value and reports one line per field; when all pass,
 * also returns the Config. Never shows a secret.
 */
export function checkFields(fields: TypedFields, now = new Date()): { checks: FieldCheck[]; config?: Config } {
  const checks: FieldCheck[] = [];
  const pass = (field: string, message: string) => checks.push({ field, ok: true, message });
  const fail = (field: string, message: string) => checks.push({ field, ok: false, message });
  const attempt = <T>(field: string, fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (err) {
      fail(field, (err as Error).message);
      return undefined;
    }
  };

  const url = str(fields.url);
  const ep = url === undefined ? void fail('url', 'is required: the client URLs of the etcd members') : attempt('url', () => parseEndpoints(url));
  const timeoutText = str(fields.timeout) ?? String(DEFAULT_TIMEOUT_SECONDS);
  const timeoutMs = attempt('timeout', () => parseTimeout(timeoutText));
  if (timeoutMs !== undefined) pass('timeout', `${timeoutMs / 1000} s per connection attempt and per request`);
  const auth = attempt('auth', () => parseAuth(str(fields.auth)));
  if (auth !== undefined) pass('auth', auth === 'none' ? 'none (no user, no client certificate)' : `${fields.auth}`);

  const wantsUser = auth === 'rbac' || auth === 'both';
  const wantsCert = auth === 'cert' || auth === 'both';
  const username = str(fields.username);
  const password = str(fields.password);
  const clientCertPem = str(fields.client_cert);
  const clientKeyPem = str(fields.client_key);
  const caCertPem = str(fields.ca_cert);

  if (ep) {
    if (wantsCert && !ep.secure) fail('url', 'certificate authentication needs https:// endpoints');
    else pass('url', `${ep.endpoints.join(', ')} (${ep.secure ? 'TLS' : 'plain, no TLS'})`);
  }

  const ignored = (what: string) => `set but ignored: auth is "${fields.auth ?? ''}", which does not use ${what}`;
  if (wantsUser) {
    if (username) pass('username', username);
    else fail('username', `required when auth is "${fields.auth}"`);
    if (password) pass('password', '******** (set)');
    else fail('password', `required when auth is "${fields.auth}"`);
  } else {
    pass('username', username ? ignored('a user') : 'not used');
    pass('password', password ? ignored('a password') : 'not used');
  }

  let certSummary: ReturnType<typeof parseCertificate> | undefined;
  let keySummary: ReturnType<typeof parsePrivateKey> | undefined;
  if (wantsCert) {
    if (!clientCertPem) fail('client_cert', `required when auth is "${fields.auth}"`);
    else certSummary = attempt('client_cert', () => parseCertificate(clientCertPem, now));
    if (!clientKeyPem) fail('client_key', `required when auth is "${fields.auth}"`);
    else keySummary = attempt('client_key', () => parsePrivateKey(clientKeyPem));
    const usage = certSummary && clientUsageProblem(certSummary.cert);
    if (usage) fail('client_cert', usage);
    else if (certSummary) pass('client_cert', certSummary.describe);
    if (keySummary) {
      if (certSummary && !certSummary.cert.checkPrivateKey(keySummary.key)) {
        fail('client_key', 'does not belong to client_cert (their public keys differ)');
      } else pass('client_key', `${keySummary.describe} (contents hidden)`);
    }
  } else {
    pass('client_cert', clientCertPem ? ignored('a client certificate') : 'not used');
    pass('client_key', clientKeyPem ? ignored('a client key') : 'not used');
  }

  const insecure = fields.insecure_skip_verify === true;
  if (caCertPem) {
    const ca = attempt('ca_cert', () => parseCertificate(caCertPem, now));
    if (ca) {
      if (ep && !ep.secure) pass('ca_cert', `${ca.describe} (unused: the endpoints are http://)`);
      else if (insecure) pass('ca_cert', `${ca.describe} (not checked: insecure_skip_verify is on)`);
      else pass('ca_cert', ca.describe);
    }
  } else if (ep?.secure) {
    pass('ca_cert', insecure ? 'not set, and not needed: insecure_skip_verify is on' : 'not set: the system CAs verify the server');
  } else {
    pass('ca_cert', 'not used');
  }
  if (!insecure) pass('insecure_skip_verify', ep?.secure ? 'off: the server certificate is verified' : 'off');
  else if (ep && !ep.secure) pass('insecure_skip_verify', 'on, but unused: the endpoints are http://');
  else pass('insecure_skip_verify', 'ON - WARNING: the server certificate is NOT verified; anyone in the path can impersonate etcd (test labs only)');

  const overwrite = fields.overwrite === true;
  pass('overwrite', overwrite ? 'on: restore also removes keys under the prefix that the archive lacks' : 'off: restore only adds and updates keys');
  const prefix = typeof fields.prefix === 'string' ? fields.prefix : '';
  const modeText = (str(fields.mode) ?? 'logical').trim().toLowerCase();
  const mode = (BACKUP_MODES as readonly string[]).includes(modeText) ? (modeText as BackupMode) : undefined;
  if (!mode) fail('mode', `${JSON.stringify(fields.mode)} is not one of: ${BACKUP_MODES.join(', ')}`);
  else pass('mode', mode === 'logical' ? 'logical: backups read the keys' : 'snapshot: backups stream a database snapshot from one member (as `etcdctl snapshot save`)');
  if (mode === 'snapshot' && prefix !== '') {
    fail('prefix', `must be empty in snapshot mode: a snapshot always holds the whole keyspace (restore can still take one prefix out of it)`);
  } else pass('prefix', prefix === '' ? 'empty: every key' : `keys beginning with ${JSON.stringify(prefix)}`);

  // Report in the schema's order, whatever order the checks ran in.
  const order = new Map(FIELDS.map((f, i) => [f.name, i]));
  checks.sort((a, b) => (order.get(a.field) ?? 99) - (order.get(b.field) ?? 99));
  if (checks.some((c) => !c.ok)) return { checks };
  return {
    checks,
    config: {
      endpoints: ep!.endpoints,
      secure: ep!.secure,
      timeoutMs: timeoutMs!,
      auth: auth!,
      username: wantsUser ? username : undefined,
      password: wantsUser ? password : undefined,
      clientCert: wantsCert ? clientCertPem : undefined,
      clientKey: wantsCert ? clientKeyPem : undefined,
      caCert: caCertPem,
      insecureSkipVerify: insecure && ep!.secure,
      overwrite,
      prefix,
      mode: mode!,
    },
  };
}

/** Type check plus value checks, for the commands that need a usable Config. */
export function resolveConfig(raw: Record<string, unknown>): { config: Config; unknown: string[] } {
  const { fields, unknown } = typeCheck(raw);
  const { checks, config } = checkFields(fields);
  if (!config) {
    const bad = checks.filter((c) => !c.ok);
    throw new ConfigError(
      bad.map((c) => `field "${c.field}" ${c.message}`).join('; '),
      'fix the configuration; `etcd-shield validate` checks every field and the connection',
    );
  }
  return { config, unknown };
}
