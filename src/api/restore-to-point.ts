import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { type BackupEntry, readCatalogue } from '../catalogue/catalogue';
import { changeCatalogue, pathTo, type PointTarget } from '../changes/chain';
import { fetchSegment } from '../changes/fetch-segment';
import { ChangeFold } from '../changes/fold';
import { writePointArchive } from '../changes/materialize';
import type { Config } from '../config/config';
import { ArchiveError, UsageError } from '../errors';
import { withTempDir } from '../io/tempdir';
import type { RestoreSummary } from '../restore/restore';
import { TOOL_NAME, TOOL_VERSION } from '../version';
import { fetchArchive } from './fetch-archive';
import { phases } from './options';
import { restoreFile, type RestoreRunOptions } from './restore';
import { type StoreOptions, type StoreRef, withStore } from './store-ref';

export interface PointRestoreOptions extends Omit<RestoreRunOptions, 'inputName'>, StoreOptions {
  /** Restore the keyspace as it was at this revision... */
  toRevision?: number;
  /** ...or at this time: the last revision seen at or before it. */
  toTime?: Date;
}

export interface PointRestoreSummary extends RestoreSummary {
  store: string;
  backup: BackupEntry;
  /** The revision restored (for a time: the one it resolved to). */
  revision: number;
  segments: number;
  /** Change events applied on top of the backup, and the distinct keys they changed. */
  events: number;
  changedKeys: number;
}

/**
 * Restores the keyspace as it was at a revision or a time: the newest full
 * backup at or before it, plus the change segments up to it. Every segment
 * on the path and the backup are downloaded and checked first; the changes
 * are folded into one final state per changed key and merged with the
 * backup into one archive, which the normal restore verifies and writes.
 * Nothing is written to etcd before all of that succeeded.
 */
export async function restoreToPoint(config: Config, from: StoreRef, opts: PointRestoreOptions): Promise<PointRestoreSummary> {
  if ((opts.toRevision === undefined) === (opts.toTime === undefined)) throw new UsageError('give either a revision or a time to restore to, not both');
  const target: PointTarget = opts.toRevision !== undefined ? { revision: opts.toRevision } : { time: opts.toTime! };
  return withStore(from, opts, async (store) => {
    const report = phases(opts.onProgress);
    report.phase('catalogue');
    const cat = await readCatalogue(store, opts.signal);
    const changes = changeCatalogue(await store.list(opts.signal));
    const path = pathTo(cat.backups, changes.segments, target, store.url);
    const m = path.backup.manifest;
    const identities = opts.identities ?? [];
    return withTempDir(async (dir) => {
      report.phase('reading the change log');
      const fold = new ChangeFold(Buffer.from(m.prefix));
      let revision = Number(m.revision);
      let next = revision + 1;
      for (const [i, s] of path.segments.entries()) {
        const seg = await fetchSegment(store, s, identities, opts.signal);
        if (seg.header.prefix !== m.prefix || seg.header.clusterId !== m.clusterId) {
          throw new ArchiveError(`change segment ${s.object.key} in ${store.url} is of cluster ${seg.header.clusterId}, prefix ${JSON.stringify(seg.header.prefix)}, not of backup ${path.backup.name}'s`, 'keep each cluster and prefix in its own store path');
        }
        if (seg.first > next || seg.last < next) throw new ArchiveError(`change segment ${s.object.key} in ${store.url} does not continue the chain at revision ${next}`);
        if ('revision' in target) {
          revision = Math.min(target.revision, seg.last);
        } else {
          for (const c of seg.clocks) if (c.at <= target.time.getTime()) revision = Math.max(revision, c.revision);
        }
        fold.apply(seg, next - 1, revision);
        next = seg.last + 1;
        report.progress(i + 1, path.segments.length);
      }
      report.phase('download');
      const { path: backupPath } = await fetchArchive(store, path.backup, identities, dir, opts.signal);
      report.phase('merging the changes into the backup');
      const pointPath = join(dir, 'point.archive');
      await writePointArchive(backupPath, fold, revision, `${TOOL_NAME} ${TOOL_VERSION}`, pointPath, opts.signal);
      await rm(backupPath, { force: true });
      const summary = await restoreFile(config, pointPath, opts, report);
      return { ...summary, store: store.url, backup: path.backup, revision, segments: path.segments.length, events: fold.events, changedKeys: fold.keys };
    });
  });
}
