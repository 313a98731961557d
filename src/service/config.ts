import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { inspect } from 'node:util';
import { Cron } from 'croner';
import { LineCounter, parseDocument } from 'yaml';
import { KEEP_RULES, type KeepRules } from '../catalogue/retention';
import type { Config } from '../config/config';
import { checkRecipient } from '../pipeline/encryption';
import { COMPRESSIONS, type Compression } from '../pipeline/types';
import { parseStoreUrl, type StoreLocation } from '../store/url';
import { readIndirect, resolveEtcdBlock, type BlockContext, type Env } from './etcd-block';
import { ServiceConfigError, type ConfigProblem } from './errors';
import { lineOf, type YamlPath } from './yaml-lines';

export { ServiceConfigError, formatProblem, type ConfigProblem } from './errors';

export const DEFAULT_LISTEN = '127.0.0.1:9469';
export const DEFAULT_TIMEZONE = 'UTC';
const JOB_NAME = /^[a-z0-9_-]+$/;
const TOP_KEYS = ['listen', 'token', 'token_env', 'token_file', 'shutdown_grace', 'ha', 'jobs'];
export const DEFAULT_GRACE_SECONDS = 60;
const JOB_KEYS = ['name', 'etcd', 'prefix', 'to', 'schedule', 'timezone', 'compress', 'encrypt_to', 'encrypt_to_file', 'identity_file', 'keep', 'verify', 'changes'];
export const DEFAULT_FLUSH_SECONDS = 5;

export interface Listen {
  host: string;
  port: number;
  loopback: boolean;
}

/** What a job shows of itself: everything but secrets. */
export interface JobSummary {
  name: string;
  etcd: { endpoints: string[]; tls: boolean; auth: string; username?: string; password?: 'set'; clientCert?: 'set'; clientKey?: 'set'; caCert?: 'set' };
  prefix: string;
  /** logical (etcd-shield archives) or snapshot (etcd's own snapshots). */
  mode: NonNullable<Config['mode']>;
  to: string;
  schedule: string;
  timezone: string;
  verify?: string;
  compress: Compression;
  encryptTo: string[];
  identityFile?: string;
  keep: KeepRules;
  changes?: { flushSeconds: number };
}

/** One scheduled backup. The etcd connection (with its secrets) is only reachable through `etcd`, never enumerated or serialised. */
export class ServiceJob {
  readonly #etcd: Config;

  constructor(
    readonly name: string,
    etcd: Config,
    readonly to: string,
    readonly store: StoreLocation,
    readonly schedule: string,
    readonly timezone: string,
    readonly compress: Compression,
    readonly encryptTo: readonly string[],
    readonly keep: KeepRules,
    readonly verify?: string,
    /** An age identity file for verifying encrypted backups; read (and checked) when the service starts. */
    readonly identityFile?: string,
    /** A change log between backups (follow), run by the leader. */
    readonly changes?: { flushSeconds: number },
  ) {
    this.#etcd = etcd;
  }

  /** The checked connection, secrets included: for the backup call only. */
  get etcd(): Config {
    return this.#etcd;
  }

  get prefix(): string {
    return this.#etcd.prefix;
  }

  /** The next scheduled backup after `after`, or undefined if the schedule never fires again. */
  nextRun(after = new Date()): Date | undefined {
    return nextRun(this.schedule, this.timezone, after);
  }

  /** The next scheduled verification, if the job has a verify schedule. */
  nextVerify(after = new Date()): Date | undefined {
    return this.verify === undefined ? undefined : nextRun(this.verify, this.timezone, after);
  }

  describe(): JobSummary {
    const e = this.#etcd;
    const set = (v: string | undefined) => (v ? ('set' as const) : undefined);
    return {
      name: this.name,
      etcd: { endpoints: e.endpoints, tls: e.secure, auth: e.auth, username: e.username, password: set(e.password), clientCert: set(e.clientCert), clientKey: set(e.clientKey), caCert: set(e.caCert) },
      prefix: this.prefix,
      mode: e.mode ?? 'logical',
      to: this.to,
      schedule: this.schedule,
      timezone: this.timezone,
      verify: this.verify,
      compress: this.compress,
      encryptTo: [...this.encryptTo],
      identityFile: this.identityFile,
      keep: { ...this.keep },
      changes: this.changes && { ...this.changes },
    };
  }

  toJSON(): JobSummary {
    return this.describe();
  }

  [inspect.custom](): JobSummary {
    return this.describe();
  }
}

export interface ServiceSummary {
  source: string;
  listen: string;
  token: 'set' | 'none';
  shutdownGraceSeconds: number;
  ha?: HaConfig;
  jobs: JobSummary[];
  warnings: string[];
}

export interface ServiceSettings {
  /** How long a running backup may go on after SIGTERM/SIGINT before it is aborted. */
  shutdownGraceSeconds: number;
  /** Things that are allowed but worth telling (e.g. no token off loopback). */
  warnings: string[];
}

/** A checked service configuration. The API token is only reachable through `token`, never enumerated or serialised. */
export class ServiceConfig {
  readonly #token: string | undefined;

  constructor(
    readonly source: string,
    readonly listen: Listen,
    token: string | undefined,
    readonly ha: HaConfig | undefined,
    readonly jobs: readonly ServiceJob[],
    readonly settings: ServiceSettings = { shutdownGraceSeconds: DEFAULT_GRACE_SECONDS, warnings: [] },
  ) {
    this.#token = token;
  }

  get token(): string | undefined {
    return this.#token;
  }

  describe(): ServiceSummary {
    const host = this.listen.host.includes(':') ? `[${this.listen.host}]` : this.listen.host;
    return { source: this.source, listen: `${host}:${this.listen.port}`, token: this.#token ? 'set' : 'none', shutdownGraceSeconds: this.settings.shutdownGraceSeconds, ha: this.ha && { ...this.ha }, jobs: this.jobs.map((j) => j.describe()), warnings: [...this.settings.warnings] };
  }

  toJSON(): ServiceSummary {
    return this.describe();
  }

  [inspect.custom](): ServiceSummary {
    return this.describe();
  }
}

export interface LoadOptions {
  env: Env;
  /** Reads files named by `*_file` keys; defaults to fs.readFileSync(path, 'utf8'). */
  readFile?: (path: string) => string;
  /** Relative `*_file` paths and directory stores are taken from here; defaults to the directory of `source`. */
  baseDir?: string;
}

/** The next time `schedule` fires in `timezone` after `after`. */
export function nextRun(schedule: string, timezone: string, after = new Date()): Date | undefined {
  return new Cron(schedule, { paused: true, timezone }).nextRun(after) ?? undefined;
}

/**
 * Parses and checks a service configuration (YAML text read from `source`).
 * Collects every problem and throws one ServiceConfigError listing them
 * all, each with its job, key and line; never puts a secret in a message.
 */
export function loadServiceConfig(text: string, source: string, opts: LoadOptions): ServiceConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const problems: ConfigProblem[] = [];
  if (doc.errors.length) {
    for (const e of doc.errors) problems.push({ field: '', message: `not valid YAML: ${e.message.split('\n')[0]}`, line: lines.linePos(e.pos[0]).line });
    throw new ServiceConfigError(source, problems);
  }
  const baseDir = opts.baseDir ?? dirname(source);
  const readFile = opts.readFile ?? ((p: string) => readFileSync(p, 'utf8'));
  const at = (path: YamlPath) => lineOf(doc, lines, path);
  const top = (field: string, message: string, path: YamlPath) => problems.push({ field, message, line: at(path) });

  const root: unknown = doc.toJS();
  if (!isMap(root)) {
    top('', 'the file must be a YAML map with listen, token_file or token_env, and jobs', []);
    throw new ServiceConfigError(source, problems);
  }
  unknownKeys(root, TOP_KEYS, (key) => top(key, `unknown setting; the file takes ${TOP_KEYS.join(', ')}`, [key]));

  const topCtx: BlockContext = { env: opts.env, readFile, resolvePath: (p) => resolve(baseDir, p), problem: (f, m, p) => top(f, m, p) };
  const listen = parseListen(root.listen ?? DEFAULT_LISTEN, (m) => top('listen', m, ['listen']));
  const token = readToken(root, topCtx);
  const warnings: string[] = [];
  if (listen && !listen.loopback && token === undefined && !tokenGiven(root)) {
    // Allowed, as the issue asks, but loudly: the API then refuses runs from anywhere but loopback.
    warnings.push(`listen ${String(root.listen)} is not a loopback address and no token is set: anyone who reaches it can read the jobs, and POST /api/jobs/NAME/run is refused except from loopback; set token_file or token_env`);
  }
  const grace = parseSeconds(root.shutdown_grace ?? DEFAULT_GRACE_SECONDS, (m) => top('shutdown_grace', m, ['shutdown_grace']));
  const ha = parseHa(root.ha, top);

  const jobs: ServiceJob[] = [];
  const names = new Map<string, number>();
  if (!Array.isArray(root.jobs) || root.jobs.length === 0) {
    top('jobs', root.jobs === undefined || (Array.isArray(root.jobs) && root.jobs.length === 0) ? 'no jobs: give at least one job (name, etcd, to, schedule)' : 'must be a list of jobs', root.jobs === undefined ? [] : ['jobs']);
  } else {
    const stores = new Map<string, string>();
    root.jobs.forEach((raw, i) => {
      const name = isMap(raw) && typeof raw.name === 'string' ? raw.name : undefined;
      const first = name === undefined ? undefined : names.get(name);
      if (first !== undefined) problems.push({ job: `job ${JSON.stringify(name)}`, field: 'name', message: `is also the name of job ${first + 1}; names must be unique`, line: at(['jobs', i, 'name']) });
      else if (name !== undefined) names.set(name, i);
      const job = parseJob(raw, i, { ...topCtx, problem: () => undefined }, problems, at, baseDir);
      if (!job) return;
      const where = JSON.stringify(job.store);
      const other = stores.get(where);
      // Two jobs in one store would mix their catalogues and prune each other's backups.
      if (other !== undefined && other !== job.name) problems.push({ job: `job "${job.name}"`, field: 'to', message: `is also the store of job "${other}"; give each job its own store`, line: at(['jobs', i, 'to']) });
      else stores.set(where, job.name);
      jobs.push(job);
    });
  }
  const haConfig = resolveHa(ha, [...names.keys()], top);
  if (problems.length) throw new ServiceConfigError(source, byLine(problems));
  return new ServiceConfig(source, listen!, token, haConfig, jobs, { shutdownGraceSeconds: grace ?? DEFAULT_GRACE_SECONDS, warnings });
}

type Map_ = Record<string, unknown>;

/** In file order, as an editor shows them; the sort is stable, so one line's problems keep their order. */
function byLine(problems: ConfigProblem[]): ConfigProblem[] {
  return [...problems].sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity));
}

function isMap(x: unknown): x is Map_ {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function unknownKeys(m: Map_, allowed: readonly string[], report: (key: string) => void): void {
  for (const key of Object.keys(m)) if (!allowed.includes(key)) report(key);
}

/** `host:port` or `[v6]:port`; loopback is what may go without a token. */
export function parseListen(value: unknown, fail: (message: string) => void): Listen | undefined {
  const text = typeof value === 'number' ? String(value) : value;
  if (typeof text !== 'string') return void fail('must be host:port, e.g. 127.0.0.1:9469');
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text.trim());
  if (!m) return void fail(`"${text}" is not host:port (e.g. 127.0.0.1:9469, 0.0.0.0:9469, [::1]:9469)`);
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return void fail(`"${text}" has port ${port}, outside 1-65535`);
  const loopback = host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
  return { host, port, loopback };
}

/** A number of seconds, or a string like "90s" or "2m"; whole, 0 to a day. */
function parseSeconds(value: unknown, fail: (message: string) => void): number | undefined {
  const m = typeof value === 'number' ? [String(value), String(value), 's'] : typeof value === 'string' ? /^(\d+)\s*(s|m)?$/.exec(value.trim()) : null;
  const n = m ? Number(m[1]) * (m[2] === 'm' ? 60 : 1) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 86400) return void fail(`${JSON.stringify(value)} is not a duration: give seconds (60), "90s" or "2m", at most a day`);
  return n;
}

function tokenGiven(root: Map_): boolean {
  return ['token', 'token_env', 'token_file'].some((k) => root[k] !== undefined && root[k] !== null);
}

function readToken(root: Map_, ctx: BlockContext): string | undefined {
  const given = (['token', 'token_env', 'token_file'] as const).filter((k) => root[k] !== undefined && root[k] !== null);
  if (given.length > 1) {
    ctx.problem(given[1]!, `give only one of token, token_env and token_file (found ${given.join(', ')})`, [given[1]!]);
    return undefined;
  }
  const key = given[0];
  if (key === undefined) return undefined;
  if (key === 'token') {
    // The value is never shown, even when it is wrong.
    if (typeof root.token !== 'string' || root.token.trim() === '') return void ctx.problem('token', 'must be a non-empty string (value hidden)', ['token']);
  }
  const token = key === 'token' ? (root.token as string) : readIndirect(key, key === 'token_env' ? 'env' : 'file', root[key], ctx, [key]);
  if (token !== undefined && /\s/.test(token)) return void ctx.problem(key, 'the token contains white space (value hidden); a Bearer token is one word', [key]);
  return token;
}

/** How long an instance's lease lives without keep-alives: the longest a dead leader holds on. */
export const DEFAULT_HA_TTL = 10;
const HA_TTL_MIN = 2;
const HA_TTL_MAX = 300;
const HA_KEYS = ['election', 'job', 'ttl'];

/** Several instances campaign on `election`, through the etcd cluster of job `job`. */
export interface HaConfig {
  election: string;
  job: string;
  /** Lease TTL in seconds. */
  ttl: number;
}

type HaInput = Omit<HaConfig, 'job'> & { job?: string };

function parseHa(raw: unknown, top: (f: string, m: string, p: YamlPath) => void): HaInput | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (!isMap(raw)) return void top('ha', 'must be a map, e.g. { election: /etcd-shield/leader }', ['ha']);
  unknownKeys(raw, HA_KEYS, (k) => top(`ha.${k}`, `unknown setting; ha takes ${HA_KEYS.join(', ')}`, ['ha', k]));
  let ok = true;
  if (typeof raw.election !== 'string' || raw.election.trim() === '') {
    ok = false;
    top('ha.election', 'must be the etcd key of the election, e.g. /etcd-shield/leader', ['ha', 'election']);
  }
  if (raw.job !== undefined && (typeof raw.job !== 'string' || raw.job.trim() === '')) {
    ok = false;
    top('ha.job', 'must be the name of the job whose etcd holds the election (default: the first job)', ['ha', 'job']);
  }
  const ttl = raw.ttl ?? DEFAULT_HA_TTL;
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < HA_TTL_MIN || ttl > HA_TTL_MAX) {
    ok = false;
    top('ha.ttl', `${JSON.stringify(ttl)} is not a whole number of seconds from ${HA_TTL_MIN} to ${HA_TTL_MAX} (default ${DEFAULT_HA_TTL})`, ['ha', 'ttl']);
  }
  return ok ? { election: raw.election as string, job: raw.job as string | undefined, ttl: ttl as number } : undefined;
}

/** The job named by ha.job (or the first one) must be in the file; `jobs` are the names given, even of jobs with problems. */
function resolveHa(ha: HaInput | undefined, jobs: readonly string[], top: (f: string, m: string, p: YamlPath) => void): HaConfig | undefined {
  if (!ha || jobs.length === 0) return undefined;
  const job = ha.job ?? jobs[0]!;
  if (!jobs.includes(job)) return void top('ha.job', `"${job}" is not a job of this file; give one of ${jobs.join(', ')}`, ['ha', 'job']);
  return { election: ha.election, job, ttl: ha.ttl };
}

/** Checks one cron expression in a zone; returns the problem or undefined. */
function cronProblem(expr: unknown, timezone: string | undefined): string | undefined {
  if (typeof expr !== 'string' || expr.trim() === '') return 'must be a cron expression in quotes, e.g. "0 */15 * * * *" (seconds first when there are six fields)';
  try {
    const next = nextRun(expr, timezone ?? DEFAULT_TIMEZONE);
    if (!next) return `"${expr}" never fires again`;
  } catch (err) {
    return `"${expr}" is not a cron expression (${(err as Error).message.replace(/^CronPattern: /, '')})`;
  }
  return undefined;
}

function isTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function parseJob(raw: unknown, i: number, ctx: BlockContext, problems: ConfigProblem[], at: (p: YamlPath) => number | undefined, baseDir: string): ServiceJob | undefined {
  const base: YamlPath = ['jobs', i];
  const name = isMap(raw) && typeof raw.name === 'string' && raw.name !== '' ? raw.name : undefined;
  const label = name === undefined ? `job ${i + 1}` : `job ${JSON.stringify(name)}`;
  let ok = true;
  const fail = (field: string, message: string, path: YamlPath = [...base, field]) => {
    ok = false;
    problems.push({ job: label, field, message, line: at(path) });
  };
  if (!isMap(raw)) return void fail('', 'must be a map with name, etcd, to and schedule', base);
  unknownKeys(raw, JOB_KEYS, (k) => fail(k, `unknown setting; a job takes ${JOB_KEYS.join(', ')}`));
  if (name === undefined) fail('name', raw.name === undefined ? 'is required' : 'must be a non-empty string', raw.name === undefined ? base : [...base, 'name']);
  else if (!JOB_NAME.test(name)) fail('name', `"${name}" may hold only a-z, 0-9, _ and - (it names the job in the API and in metrics)`);

  const etcd = resolveEtcdBlock(raw.etcd, raw.prefix, base, { ...ctx, problem: (f, m, p) => fail(f, m, p) });

  let store: StoreLocation | undefined;
  if (typeof raw.to !== 'string' || raw.to.trim() === '') fail('to', 'is required: a store, a directory or s3://bucket/prefix', raw.to === undefined ? base : [...base, 'to']);
  else {
    try {
      store = parseStoreUrl(raw.to, baseDir);
    } catch (err) {
      fail('to', (err as Error).message);
    }
  }

  let timezone = DEFAULT_TIMEZONE;
  if (raw.timezone !== undefined) {
    if (typeof raw.timezone !== 'string' || !isTimezone(raw.timezone)) fail('timezone', `${JSON.stringify(raw.timezone)} is not an IANA time zone (e.g. UTC, Europe/Berlin, America/New_York)`);
    else timezone = raw.timezone;
  }
  const scheduleProblem = raw.schedule === undefined ? 'is required: a cron expression, e.g. "0 */15 * * * *"' : cronProblem(raw.schedule, timezone);
  if (scheduleProblem) fail('schedule', scheduleProblem, raw.schedule === undefined ? base : [...base, 'schedule']);
  if (raw.verify !== undefined && raw.verify !== null) {
    const p = cronProblem(raw.verify, timezone);
    if (p) fail('verify', p);
  }

  let compress: Compression = 'zstd';
  if (raw.compress !== undefined) {
    if (!COMPRESSIONS.includes(raw.compress as Compression)) fail('compress', `${JSON.stringify(raw.compress)} is not one of ${COMPRESSIONS.join(', ')}`);
    else compress = raw.compress as Compression;
  }

  const recipients = parseJobRecipients(raw, ctx, fail, base);
  const keep = parseKeep(raw.keep, fail, [...base, 'keep']);
  let identityFile: string | undefined;
  if (raw.identity_file !== undefined && raw.identity_file !== null) {
    if (typeof raw.identity_file !== 'string' || raw.identity_file.trim() === '') fail('identity_file', 'must be the path of an age identity file (as age-keygen writes it)');
    else identityFile = resolve(baseDir, raw.identity_file);
  } else if (raw.verify !== undefined && raw.verify !== null && recipients.length > 0) {
    fail('identity_file', 'is required with verify on an encrypted job: verifying reads the backups, which needs an age identity of one of the recipients', [...base, 'verify']);
  }

  const changes = parseChanges(raw.changes, fail, [...base, 'changes']);
  if (changes && etcd?.mode === 'snapshot') {
    fail('changes', 'cannot follow a job in snapshot mode (etcd.mode): a restore to a point starts from an etcd-shield archive, not a snapshot; give the change log a logical job of its own', [...base, 'changes']);
  }

  if (!ok || !etcd || !store || name === undefined) return undefined;
  return new ServiceJob(name, etcd, raw.to as string, store, raw.schedule as string, timezone, compress, recipients, keep, raw.verify === undefined || raw.verify === null ? undefined : (raw.verify as string), identityFile, changes);
}

type Fail = (field: string, message: string, path?: YamlPath) => void;

/** Each recipient is checked on its own, so every bad one is reported. */
function parseJobRecipients(raw: Map_, ctx: BlockContext, fail: Fail, base: YamlPath): string[] {
  const found: string[] = [];
  const check = (value: unknown, where: string, path: YamlPath) => {
    if (typeof value !== 'string') return fail(where, 'must be an age recipient (age1...)', path);
    try {
      found.push(checkRecipient(value, where));
    } catch (err) {
      fail(where, (err as Error).message.replace(`${where}: `, ''), path);
    }
  };
  const list = raw.encrypt_to;
  if (list !== undefined && list !== null) {
    if (typeof list === 'string') check(list, 'encrypt_to', [...base, 'encrypt_to']);
    else if (!Array.isArray(list)) fail('encrypt_to', 'must be a list of age recipients (age1...)');
    else list.forEach((r, j) => check(r, `encrypt_to[${j}]`, [...base, 'encrypt_to', j]));
  }
  if (raw.encrypt_to_file !== undefined && raw.encrypt_to_file !== null) {
    const path = [...base, 'encrypt_to_file'];
    const text = readIndirect('encrypt_to_file', 'file', raw.encrypt_to_file, { ...ctx, problem: (f, m) => fail(f, m, path) }, path);
    if (text !== undefined) {
      const before = found.length;
      text.split('\n').forEach((line, j) => {
        const l = line.trim();
        if (l !== '' && !l.startsWith('#')) check(l, `encrypt_to_file line ${j + 1}`, path);
      });
      if (found.length === before) fail('encrypt_to_file', 'holds no recipient; put one age1... recipient a line in it');
    }
  }
  return [...new Set(found)];
}

/** `changes: { flush: 5s }` (or `changes: {}` for the default): the change log of issue 16. */
function parseChanges(raw: unknown, fail: Fail, path: YamlPath): { flushSeconds: number } | undefined {
  if (raw === undefined || raw === null || raw === false) return undefined;
  if (!isMap(raw)) return void fail('changes', 'must be a map, e.g. { flush: 5s }');
  unknownKeys(raw, ['flush'], (k) => fail(`changes.${k}`, 'unknown setting; changes takes flush', [...path, k]));
  const flush = parseSeconds(raw.flush ?? DEFAULT_FLUSH_SECONDS, (m) => fail('changes.flush', m, [...path, 'flush']));
  if (flush === 0) return void fail('changes.flush', 'must be at least 1 second', [...path, 'flush']);
  return flush === undefined ? undefined : { flushSeconds: flush };
}

function parseKeep(raw: unknown, fail: Fail, path: YamlPath): KeepRules {
  const keep: KeepRules = {};
  if (raw === undefined || raw === null) return keep;
  if (!isMap(raw)) {
    fail('keep', `must be a map of ${KEEP_RULES.join(', ')} to counts`);
    return keep;
  }
  for (const [rule, n] of Object.entries(raw)) {
    if (!(KEEP_RULES as readonly string[]).includes(rule)) fail(`keep.${rule}`, `unknown rule; keep takes ${KEEP_RULES.join(', ')}`, [...path, rule]);
    else if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) fail(`keep.${rule}`, `${JSON.stringify(n)} is not a whole number of 0 or more`, [...path, rule]);
    else keep[rule as keyof KeepRules] = n;
  }
  if (Object.keys(raw).length && !Object.values(keep).some((n) => (n ?? 0) > 0) && Object.keys(keep).length === Object.keys(raw).length) {
    fail('keep', 'every rule is 0, which would delete all but the newest backup; omit keep to keep every backup');
  }
  return keep;
}
