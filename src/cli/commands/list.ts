import { catalogueJson, listBackups } from '../../api/catalogue';
import { humanBytes } from '../../util/format';
import type { RunContext } from '../context';
import { printReport } from '../stdout';
import { type StoreFlags, storeOptions } from '../store-flags';

/** One line per complete backup, from manifests only; incomplete and unreadable ones are counted on stderr. */
export async function runList(from: string, opts: StoreFlags & { json?: boolean }, ctx: RunContext): Promise<void> {
  const cat = await listBackups(from, { ...storeOptions(opts), signal: ctx.signal });
  if (opts.json) {
    printReport(JSON.stringify(catalogueJson(cat), null, 2));
  } else if (cat.backups.length) {
    const rows = cat.backups.map((b) => {
      const m = b.manifest;
      return [b.name, m.format === 'etcd-snapshot' ? 'snapshot' : 'archive', m.takenAt.replace(/\.\d+Z$/, 'Z'), m.revision, String(m.keys), humanBytes(m.storedBytes), m.compression, m.encryption.type === 'age' ? `age (${m.encryption.recipients.length})` : 'none', JSON.stringify(m.prefix)];
    });
    printReport(table(['NAME', 'KIND', 'TAKEN', 'REVISION', 'KEYS', 'STORED', 'COMPRESS', 'ENCRYPTION', 'PREFIX'], rows));
  }
  if (!opts.json && cat.changes.segments) {
    const rows = cat.windows.map((w) => [`r${w.fromRevision}`, w.fromTime.toISOString(), `r${w.toRevision}`, w.toTime.toISOString(), w.backup]);
    printReport(`\nrecoverable windows (restore --to-revision / --to-time):\n${table(['FROM', 'FROM TIME', 'TO', 'TO TIME', 'FROM BACKUP'], rows)}`);
  }
  if (!opts.json) {
    ctx.say(`${cat.backups.length} complete backup${cat.backups.length === 1 ? '' : 's'} in ${cat.store}`);
    if (cat.changes.segments) ctx.say(`change log: ${cat.changes.segments} segment${cat.changes.segments === 1 ? '' : 's'}, ${humanBytes(cat.changes.bytes)}`);
    for (const g of cat.changes.gaps) ctx.say(`gap: ${g} (changes were compacted away before they were recorded; a window ends there)`);
    if (cat.incomplete.length) ctx.say(`note: ${cat.incomplete.length} incomplete archive(s) without a manifest (failed or running backups; prune removes them after a day)`);
    if (cat.unfinished.length) {
      const bytes = cat.unfinished.reduce((n, w) => n + w.size, 0);
      ctx.say(`note: ${cat.unfinished.length} unfinished write(s) left by runs that were killed (${cat.unfinished[0]!.id}${cat.unfinished.length > 1 ? ' ...' : ''}, ${humanBytes(bytes)}); prune removes them once nothing has written to them for a day`);
    }
    for (const p of cat.problems) ctx.say(`warning: ${p.message}`);
    // Usually a mistyped path: say so rather than just "0 backups".
    if (!cat.backups.length && !cat.incomplete.length && !cat.unfinished.length && !cat.changes.segments && !cat.problems.length) {
      ctx.say(`note: nothing etcd-shield wrote is under ${cat.store}; check the path (each cluster and prefix has its own, as given to backup --to)`);
    }
  }
}

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [head, ...rows].map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')).join('\n');
}
