import { pruneStore } from '../../api/catalogue';
import type { KeepRules } from '../../catalogue/retention';
import type { RunContext } from '../context';
import { printReport } from '../stdout';
import { type KeepFlags, type StoreFlags, storeOptions } from '../store-flags';

/** Applies the keep rules and says, for every backup, whether it stays and why. */
export async function runPrune(from: string, opts: StoreFlags & KeepFlags & { dryRun?: boolean; json?: boolean }, ctx: RunContext): Promise<void> {
  const rules: KeepRules = { last: opts.keepLast, hourly: opts.keepHourly, daily: opts.keepDaily, weekly: opts.keepWeekly, monthly: opts.keepMonthly, yearly: opts.keepYearly };
  const r = await pruneStore(from, rules, {
    ...storeOptions(opts),
    dryRun: opts.dryRun,
    signal: ctx.signal,
  });
  const dropped = r.decisions.filter((d) => !d.keep);
  if (opts.json) {
    printReport(
      JSON.stringify(
        {
          store: r.store,
          dryRun: Boolean(opts.dryRun),
          backups: r.decisions.map((d) => ({ name: d.backup.name, takenAt: d.backup.manifest.takenAt, keep: d.keep, reasons: d.reasons })),
          incompleteRemoved: r.staleIncomplete.map((o) => o.key),
          changesRemoved: r.changes.map((o) => o.key),
          removedObjects: r.removed,
        },
        null,
        2,
      ),
    );
  } else {
    const verb = opts.dryRun ? 'would delete' : 'delete';
    const col = (word: string) => word.padEnd(verb.length + 1);
    const lines = r.decisions.map((d) => (d.keep ? `${col('keep')}${d.backup.name}  (${d.reasons.join(', ')})` : `${col(verb)}${d.backup.name}  (no rule keeps it)`));
    for (const o of r.staleIncomplete) lines.push(`${col(verb)}${o.key}  (incomplete: no manifest, last written ${o.modified.toISOString()})`);
    if (r.changes.length) lines.push(`${col(verb)}${r.changes.length} change segment(s) and gap marker(s) older than the oldest kept backup (${r.changes[0]!.key} ...)`);
    if (lines.length) printReport(lines.join('\n'));
  }
  const kept = r.decisions.length - dropped.length;
  ctx.say(
    `${opts.dryRun ? 'dry run: nothing was deleted; prune would keep' : 'prune done: kept'} ${kept} backup${kept === 1 ? '' : 's'} and ${opts.dryRun ? 'delete' : 'deleted'} ${dropped.length}${r.staleIncomplete.length ? ` and ${r.staleIncomplete.length} incomplete archive(s)` : ''} in ${r.store}`,
  );
}
