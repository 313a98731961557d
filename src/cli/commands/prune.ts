import { pruneStore } from '../../api/catalogue';
import type { KeepRules } from '../../catalogue/retention';
import { humanBytes } from '../../util/format';
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
          unfinishedRemoved: r.staleUnfinished.map((w) => w.id),
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
    for (const w of r.staleUnfinished) lines.push(`${col(verb)}${w.id}  (unfinished write of ${w.key} by a run that was killed, ${humanBytes(w.size)}, last written ${w.modified.toISOString()})`);
    if (r.changes.length) lines.push(`${col(verb)}${r.changes.length} change segment(s) and gap marker(s) older than the oldest kept backup (${r.changes[0]!.key} ...)`);
    if (lines.length) printReport(lines.join('\n'));
  }
  const kept = r.decisions.length - dropped.length;
  const also = [
    r.staleIncomplete.length && `${r.staleIncomplete.length} incomplete archive(s)`,
    r.staleUnfinished.length && `${r.staleUnfinished.length} unfinished write(s)`,
    r.changes.length && `${r.changes.length} change-log object(s)`,
  ].filter(Boolean);
  const plural = (n: number) => `${n} backup${n === 1 ? '' : 's'}`;
  ctx.say(
    `${opts.dryRun ? 'dry run: nothing was deleted; prune would keep' : 'prune done: kept'} ${plural(kept)} and ${opts.dryRun ? 'delete' : 'deleted'} ${plural(dropped.length)}${also.length ? `, ${also.join(', ')}` : ''} in ${r.store}`,
  );
}
