import type { Command } from 'commander';
import { checkFields, checkTypes, FieldCheck } from '../config/config';
import { FIELDS } from '../config/fields';
import { ConfigError } from '../errors';
import { probeCluster } from '../etcd/probe';
import { rawFields } from '../cli/fields-cli';
import { printReport } from '../io/report';
import { RunContext, warnUnknown } from './context';

const MARK = { ok: '✓', fail: '✗', warn: '!' } as const;

const WIDTH = Math.max(...FIELDS.map((f) => f.name.length)) + 1;

function line(mark: string, name: string, message: string): string {
  return `${mark} ${name.padEnd(WIDTH)} ${message}`;
}

/**
 * One line per field, then (when the fields are usable and --offline is not
 * given) one line per connection check. Secrets are never printed.
 */
export async function runValidate(cmd: Command, ctx: RunContext, offline: boolean): Promise<void> {
  const types = checkTypes(rawFields(cmd));
  warnUnknown(types.unknown, ctx);
  const { checks, config } = checkFields(types.fields);
  const bad = new Set(types.wrongType.map((c) => c.field));
  const order = (c: FieldCheck) => FIELDS.findIndex((f) => f.name === c.field);
  const all: FieldCheck[] = [...checks.filter((c) => !bad.has(c.field)), ...types.wrongType].sort((a, b) => order(a) - order(b));
  for (const c of all) printReport(line(c.ok ? MARK.ok : MARK.fail, c.field, c.message));

  let failures = all.filter((c) => !c.ok).map((c) => c.field);
  if (config && failures.length === 0 && !offline) {
    for (const p of await probeCluster(config)) {
      printReport(line(MARK[p.status], p.name, p.message));
      if (p.status === 'fail') failures.push(p.name);
    }
  }
  failures = [...new Set(failures)];
  if (failures.length) {
    throw new ConfigError(
      `validation failed: ${failures.join(', ')}`,
      'fix the lines marked ✗ above and run validate again',
    );
  }
}
