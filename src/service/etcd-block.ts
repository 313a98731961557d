import { checkFields, checkTypes, type Config } from '../config/config';
import { FIELDS, type FieldSpec } from '../config/fields';
import type { YamlPath } from './yaml-lines';

export type Env = Record<string, string | undefined>;

/** Where secrets come from, and how to report a problem at a place in the file. */
export interface BlockContext {
  env: Env;
  /** Reads a file named in the config (already resolved against the config's directory). */
  readFile(path: string): string;
  resolvePath(path: string): string;
  problem(field: string, message: string, path: YamlPath): void;
}

const BY_NAME = new Map(FIELDS.map((f) => [f.name, f]));

/** Secrets may come from the environment or a file; PEM fields from a file too, since PEM text is awkward in YAML. */
function indirections(spec: FieldSpec): ('env' | 'file')[] {
  if (spec.secret) return ['env', 'file'];
  return spec.type.startsWith('pem-') ? ['file'] : [];
}

/** `X_env` / `X_file` to the field and the source, when that field allows it. */
function indirect(key: string): { spec: FieldSpec; via: 'env' | 'file' } | undefined {
  const m = /^(.+)_(env|file)$/.exec(key);
  const spec = m && BY_NAME.get(m[1]!);
  if (!spec || !indirections(spec).includes(m[2] as 'env' | 'file')) return undefined;
  return { spec, via: m[2] as 'env' | 'file' };
}

/** A password or token file usually ends with a newline that is not part of the secret. */
export const withoutFinalNewline = (s: string) => s.replace(/\r?\n$/, '');

/** Reads `value` (a variable name or a path) for `key`; undefined after reporting a problem. */
export function readIndirect(key: string, via: 'env' | 'file', value: unknown, ctx: BlockContext, path: YamlPath, keepNewline = false): string | undefined {
  if (typeof value !== 'string' || value.trim() === '') {
    ctx.problem(key, via === 'env' ? 'must name an environment variable' : 'must be a file path', path);
    return undefined;
  }
  if (via === 'env') {
    const found = ctx.env[value];
    if (found === undefined || found === '') ctx.problem(key, `environment variable ${value} is not set`, path);
    return found || undefined;
  }
  const file = ctx.resolvePath(value);
  let text: string;
  try {
    text = ctx.readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    ctx.problem(key, `cannot read ${file}: ${code ?? (err as Error).message}`, path);
    return undefined;
  }
  const out = keepNewline ? text : withoutFinalNewline(text);
  if (out === '') ctx.problem(key, `${file} is empty`, path);
  return out || undefined;
}

/**
 * Turns a job's `etcd` block into a checked Config with the same checks as
 * every other face (checkTypes, checkFields), reporting every problem as
 * `etcd.FIELD`. Returns undefined when anything is wrong.
 */
export function resolveEtcdBlock(raw: unknown, prefix: unknown, base: YamlPath, ctx: BlockContext): Config | undefined {
  if (raw === undefined || raw === null) {
    ctx.problem('etcd', 'is required: the etcd connection, in the SHIELD field names (url, auth, username, password_env, ...)', base);
    return undefined;
  }
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    ctx.problem('etcd', 'must be a map of the SHIELD field names (url, auth, username, password_env, ...)', [...base, 'etcd']);
    return undefined;
  }
  const entries = Object.entries(raw as Record<string, unknown>);
  const fields: Record<string, unknown> = {};
  // The key the operator wrote for each field, so errors name it.
  const written = new Map<string, string>();
  // Fields whose variable or file could not be read: already reported, so not "missing" too.
  const unread = new Set<string>();
  let ok = true;
  const fail = (key: string, message: string) => {
    ok = false;
    ctx.problem(`etcd.${key}`, message, [...base, 'etcd', key]);
  };
  for (const [key, value] of entries) {
    const spec = BY_NAME.get(key);
    const ind = spec ? undefined : indirect(key);
    const field = spec?.name ?? ind?.spec.name;
    if (!field) {
      const allowed = FIELDS.flatMap((f) => [f.name, ...indirections(f).map((via) => `${f.name}_${via}`)]);
      fail(key, `unknown field; the etcd block takes ${allowed.join(', ')}`);
      continue;
    }
    if (written.has(field)) {
      fail(key, `${field} is already given as ${written.get(field)}; give only one`);
      continue;
    }
    written.set(field, key);
    if (!ind) {
      fields[field] = value;
      continue;
    }
    const path = [...base, 'etcd', key];
    const text = readIndirect(`etcd.${key}`, ind.via, value, ctx, path, ind.spec.type.startsWith('pem-'));
    if (text === undefined) {
      ok = false;
      unread.add(field);
    } else fields[field] = text;
  }
  if (prefix !== undefined && prefix !== null) {
    if (written.has('prefix')) {
      ok = false;
      ctx.problem('prefix', 'is also given as etcd.prefix; give it once', [...base, 'prefix']);
    } else {
      fields.prefix = prefix;
      written.set('prefix', 'prefix');
    }
  }
  const named = (field: string) => (field === 'prefix' && written.get('prefix') === 'prefix' ? 'prefix' : `etcd.${written.get(field) ?? field}`);
  const pathOf = (field: string) => (named(field) === 'prefix' ? [...base, 'prefix'] : [...base, 'etcd', written.get(field) ?? field]);

  const typed = checkTypes(fields);
  for (const w of typed.wrongType) {
    ok = false;
    ctx.problem(named(w.field), w.message, pathOf(w.field));
  }
  const badType = new Set([...typed.wrongType.map((w) => w.field), ...unread]);
  const { checks, config } = checkFields(typed.fields);
  for (const c of checks) {
    if (c.ok || badType.has(c.field)) continue;
    ok = false;
    ctx.problem(named(c.field), c.message, written.has(c.field) ? pathOf(c.field) : [...base, 'etcd']);
  }
  return ok ? config : undefined;
}
