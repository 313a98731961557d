import type { Command } from 'commander';
import { validate } from '../../api/validate';
import { FIELDS } from '../../config/fields';
import { ConfigError } from '../../errors';
import { rawFields } from '../field-flags';
import { printReport } from '../stdout';
import { type RunContext, warnings, warnUnknown } from '../context';

const MARK = { ok: '✓', fail: '✗', warn: '!' } as const;

const WIDTH = Math.max(...FIELDS.map((f) => f.name.length)) + 1;

/** One line per field, then one per connection check; exit 4 if any failed. Secrets are never printed. */
export async function runValidate(cmd: Command, ctx: RunContext, offline: boolean): Promise<void> {
  const report = await validate(rawFields(cmd), { offline, onWarning: warnings(ctx) });
  warnUnknown(report.unknown, ctx);
  for (const l of report.lines) printReport(`${MARK[l.status]} ${l.name.padEnd(WIDTH)} ${l.message}`);
  if (!report.ok) {
    throw new ConfigError(`validation failed: ${report.failures.join(', ')}`, 'fix the lines marked ✗ above and run validate again');
  }
}
