import { deleteBackups, type DeletedKind } from '../../api/catalogue';
import { humanBytes } from '../../util/format';
import type { RunContext } from '../context';
import { printReport } from '../stdout';
import { type StoreFlags, storeOptions } from '../store-flags';

const WHAT: Record<DeletedKind, string> = {
  complete: 'manifest and archive',
  incomplete: 'incomplete: an archive without a manifest',
  broken: 'not a complete backup: its manifest cannot be read, or its archive is gone',
};

/** Deletes named backups whole and says what went; the store must keep a complete backup unless --force. */
export async function runDelete(from: string, names: string[], opts: StoreFlags & { dryRun?: boolean; force?: boolean; json?: boolean }, ctx: RunContext): Promise<void> {
  const r = await deleteBackups(from, names, { ...storeOptions(opts), dryRun: opts.dryRun, force: opts.force, signal: ctx.signal });
  if (opts.json) {
    const backups = r.backups.map((b) => ({ name: b.name, kind: b.kind, objects: b.objects.map((o) => o.key) }));
    printReport(JSON.stringify({ store: r.store, dryRun: Boolean(opts.dryRun), backups, removedObjects: r.removed, remaining: r.remaining }, null, 2));
  } else {
    const verb = opts.dryRun ? 'would delete' : 'deleted';
    printReport(r.backups.map((b) => `${verb} ${b.name}  (${WHAT[b.kind]}; ${b.objects.length} object${b.objects.length === 1 ? '' : 's'}, ${humanBytes(b.objects.reduce((n, o) => n + o.size, 0))})`).join('\n'));
  }
  const n = r.backups.length;
  ctx.say(
    `${opts.dryRun ? 'dry run: nothing was deleted; delete would remove' : 'delete done: removed'} ${n} backup${n === 1 ? '' : 's'} from ${r.store}; ${r.remaining} complete backup${r.remaining === 1 ? '' : 's'} ${opts.dryRun ? 'would remain' : 'remain'}`,
  );
}
