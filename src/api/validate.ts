import { checkFields, checkTypes } from '../config/config';
import { FIELDS } from '../config/fields';
import { probeCluster } from '../etcd/probe';

export interface ValidationLine {
  /** A field name, or a connection check (endpoint, cluster, leader, members, identity, read, write). */
  name: string;
  status: 'ok' | 'fail' | 'warn';
  message: string;
}

export interface ValidationReport {
  ok: boolean;
  /** One line per field in schema order, then (online, with usable fields) one per connection check. */
  lines: ValidationLine[];
  /** Fields given that the schema does not have: ignored. */
  unknown: string[];
  /** Names of the lines that failed. */
  failures: string[];
}

/**
 * Checks every field of a raw configuration (SHIELD field names), then,
 * unless offline or a field failed, connects: endpoints, cluster, leader,
 * members, credentials, read and write permission. Writes nothing, and
 * never shows a secret.
 */
export async function validate(
  fields: Record<string, unknown>,
  opts: { offline?: boolean; onWarning?: (message: string) => void } = {},
): Promise<ValidationReport> {
  const types = checkTypes(fields);
  const { checks, config } = checkFields(types.fields);
  const bad = new Set(types.wrongType.map((c) => c.field));
  const order = (name: string) => FIELDS.findIndex((f) => f.name === name);
  const lines: ValidationLine[] = [...checks.filter((c) => !bad.has(c.field)), ...types.wrongType]
    .sort((a, b) => order(a.field) - order(b.field))
    .map((c) => ({ name: c.field, status: c.ok ? 'ok' : 'fail', message: c.message }));
  if (config && lines.every((l) => l.status !== 'fail') && !opts.offline) lines.push(...(await probeCluster(config, opts.onWarning)));
  const failures = [...new Set(lines.filter((l) => l.status === 'fail').map((l) => l.name))];
  return { ok: failures.length === 0, lines, unknown: types.unknown, failures };
}
