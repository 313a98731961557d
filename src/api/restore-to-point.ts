import { join } from 'node:path';
import { type BackupEntry, readCatalogue } from '../catalogue/catalogue';
import { changeCatalogue, pathTo, type PointTarget, type RestorePath } from '../changes/chain';
import { SegmentFetcher } from '../changes/fetch-segment';
import { ChangeFold } from '../changes/fold';
import { type Point, PointSource, PointTally } from '../changes/point-source';
import type { Config } from '../config/config';
import { ArchiveError, UsageError } from '../errors';
import { withTempDir } from '../io/tempdir';
import type { RestoreSummary } from '../restore/restore';
import type { ObjectStore } from '../store/types';
import { fetchArchive } from './fetch-archive';
import { phases } from './options';
import { restoreSource, type RestoreRunOptions } from './restore';
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
 * on the path is downloaded and checked (checksum, chain) and folded into
 * one final state per changed key, its bytes spooled to a private file;
 * then the backup downloads, checked against its manifest and verified
 * whole on the way, which also counts the merge; then the restore writes
 * it merged with the changes as it streams (PointSource). Nothing is
 * written to etcd before all of that succeeded.
 */
export async function restoreToPoint(config: Config, from: StoreRef, opts: PointRestoreOptions): Promise<PointRestoreSummary> {
  if ((opts.toRevision === undefined) === (opts.toTime === undefined)) throw new UsageError('give either a revision or a time to restore to, not both');
  const target: PointTarget = opts.toRevision !== undefined ? { revision: opts.toRevision } : { time: opts.toTime! };
  return withStore(from, opts, async (store) => {
    const report = phases(opts.onProgress);
    report.phase('catalogue');
    const objects = await store.list(opts.signal);
    const cat = await readCatalogue(store, opts.signal, objects);
    const changes = changeCatalogue(objects);
    const path = pathTo(cat.backups, changes.segments, target, store.url);
    const m = path.backup.manifest;
    const identities = opts.identities ?? [];
    return withTempDir(async (dir) => {
      report.phase('reading the change log');
      const fold = await ChangeFold.create(Buffer.from(m.prefix), join(dir, 'changes'));
      try {
        const point = await foldPath(store, path, target, fold, identities, opts.signal, report.progress);
        // The fold comes first so that the download's own pass (which checks the backup) also counts
        // the merge: the restore then reads the backup once more only to write it.
        report.phase('download');
        const tally = new PointTally(fold, point, config.prefix);
        const { path: backupPath, verified } = await fetchArchive(store, path.backup, identities, dir, opts.signal, config.prefix, tally);
        const counted = verified && { scope: tally.scope, summary: tally.summary(verified.format, verified.bytes) };
        const summary = await restoreSource(config, new PointSource(backupPath, fold, point, counted), opts, report);
        return { ...summary, store: store.url, backup: path.backup, revision: point.revision, segments: path.segments.length, events: fold.events, changedKeys: fold.keys };
      } finally {
        await fold.close();
      }
    });
  });
}

/**
 * Fetches, checks and folds the segments of the path one at a time, up to
 * the target; returns the revision it resolved to and when the log had seen it.
 */
async function foldPath(store: ObjectStore, path: RestorePath, target: PointTarget, fold: ChangeFold, identities: string[], signal: AbortSignal | undefined, progress: (done: number, total: number) => void): Promise<Point> {
  const m = path.backup.manifest;
  let revision = Number(m.revision);
  let time = 'time' in target ? target.time : undefined;
  let next = revision + 1;
  const fetcher = new SegmentFetcher(store, identities, signal);
  for (const [i, s] of path.segments.entries()) {
    const seg = await fetcher.fetch(s);
    if (seg.header.prefix !== m.prefix || seg.header.clusterId !== m.clusterId) {
      throw new ArchiveError(`change segment ${s.object.key} in ${store.url} is of cluster ${seg.header.clusterId}, prefix ${JSON.stringify(seg.header.prefix)}, not of backup ${path.backup.name}'s`, 'keep each cluster and prefix in its own store path');
    }
    if (seg.first > next || seg.last < next) throw new ArchiveError(`change segment ${s.object.key} in ${store.url} does not continue the chain at revision ${next}`);
    if ('revision' in target) {
      revision = Math.min(target.revision, seg.last);
      // By this clock's time every revision up to the point had been seen.
      const c = seg.clocks.find((k) => k.revision >= revision);
      time = c ? new Date(c.at) : s.lastTime;
    } else {
      for (const c of seg.clocks) if (c.at <= target.time.getTime()) revision = Math.max(revision, c.revision);
    }
    await fold.apply(seg, next - 1, revision);
    next = seg.last + 1;
    progress(i + 1, path.segments.length);
  }
  return { revision, time };
}
