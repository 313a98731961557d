import type { Command } from 'commander';
import { checkFields, checkTypes, FieldCheck } from '../config/config';
import { ConfigError } from '../errors';
import { probeCluster } from '../etcd/probe';
import { rawFields } from '../cli/fields-cli';
import { RunContext, warnUnknown } from './context';

const MARK = { ok: '✓', fail: '✗', warn: '!' } as const;

function line(mark: string, name: string, message: string): string {
  return `${mark} ${name.padEnd(12)} ${message}`;
}

/**
 * One line per field, then (when the fields are usable and --offline is not
 * given) one line per connection check. Secrets are never printed.
 */
export async function runValidate(cmd: Command, ctx: RunContext, offline: boolean): Promise<void> {
  const { raw } = rawFields(cmd);
  const types = checkTypes(raw);
  warnUnknown(types.unknown, ctx);
  const { checks, config } = checkFields(types.fields);
  const bad = new Set(types.wrongType.map((c) => c.field));
  const all: FieldCheck[] = [...checks.filter((c) => !bad.has(c.field)), ...types.wrongType];
  for (const c of all) process.stdout.write(`${line(c.ok ? MARK.ok : MARK.fail, c.field, c.message)}\n`);

  let failures = all.filter((c) => !c.ok).map((c) => c.field);
  if (config && failures.length === 0 && !offline) {
    for (const p of await probeCluster(config)) {
      process.stdout.write(`${line(MARK[p.status], p.name, p.message)}\n`);
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
