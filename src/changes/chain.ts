import type { BackupEntry } from '../catalogue/catalogue';
import { NotFoundError } from '../errors';
import type { ObjectStore, StoredObject } from '../store/types';
import { isGapKey, parseSegmentKey, type SegmentName } from './naming';

export interface SegmentEntry extends SegmentName {
  object: StoredObject;
}

export interface GapMarker {
  kind: 'etcd-shield-gap';
  /** The first revision that could not be recorded. */
  from: number;
  /** The oldest revision etcd still held when the gap was found. */
  compactRevision: number;
  detectedAt: string;
}

/** A span that restore can reach: from a full backup, through contiguous segments. */
export interface RecoveryWindow {
  fromRevision: number;
  fromTime: Date;
  toRevision: number;
  toTime: Date;
  /** The oldest backup the window starts from. */
  backup: string;
}

export interface ChangeCatalogue {
  /** By first revision. */
  segments: SegmentEntry[];
  gaps: StoredObject[];
}

export function changeCatalogue(objects: StoredObject[]): ChangeCatalogue {
  const segments: SegmentEntry[] = [];
  for (const o of objects) {
    const n = parseSegmentKey(o.key);
    if (n) segments.push({ ...n, object: o });
  }
  segments.sort((a, b) => a.first - b.first || b.last - a.last);
  return { segments, gaps: objects.filter((o) => isGapKey(o.key)).sort((a, b) => a.key.localeCompare(b.key)) };
}

export async function readChangeCatalogue(store: ObjectStore, signal?: AbortSignal): Promise<ChangeCatalogue> {
  return changeCatalogue(await store.list(signal));
}

/**
 * The segments that carry the state from revision `after` on, in order:
 * each step takes, of the segments that start at or before the next
 * revision needed, the one that reaches furthest. Stops where no segment
 * continues (a gap, or the end of what was recorded).
 */
export function chainFrom(segments: SegmentEntry[], after: number): SegmentEntry[] {
  const out: SegmentEntry[] = [];
  let next = after + 1;
  let i = 0;
  for (;;) {
    let best: SegmentEntry | undefined;
    for (; i < segments.length && segments[i]!.first <= next; i++) {
      const s = segments[i]!;
      if (s.last >= next && (!best || s.last > best.last)) best = s;
    }
    if (!best) return out;
    out.push(best);
    next = best.last + 1;
  }
}

/**
 * The backups a change log can continue: etcd-shield archives. An etcd
 * snapshot's keys come in revision order, and the merge with the changes
 * walks both in key order.
 */
export function pointBases(backups: BackupEntry[]): BackupEntry[] {
  return backups.filter((b) => b.manifest.format === 'etcd-shield');
}

/** Every recoverable window, oldest first; overlapping ones are merged. */
export function recoveryWindows(backups: BackupEntry[], segments: SegmentEntry[]): RecoveryWindow[] {
  const spans = pointBases(backups)
    .map((b): RecoveryWindow => {
      const rev = Number(b.manifest.revision);
      const chain = chainFrom(segments, rev);
      const end = chain[chain.length - 1];
      return { fromRevision: rev, fromTime: b.takenAt, toRevision: end ? end.last : rev, toTime: end ? end.lastTime : b.takenAt, backup: b.name };
    })
    .sort((a, b) => a.fromRevision - b.fromRevision);
  const merged: RecoveryWindow[] = [];
  for (const w of spans) {
    const prev = merged[merged.length - 1];
    if (prev && w.fromRevision <= prev.toRevision) {
      if (w.toRevision > prev.toRevision) {
        prev.toRevision = w.toRevision;
        prev.toTime = w.toTime;
      }
    } else {
      merged.push({ ...w });
    }
  }
  return merged;
}

export function describeWindows(windows: RecoveryWindow[]): string {
  if (!windows.length) return 'none (the store holds no complete backup)';
  return windows.map((w) => `r${w.fromRevision} (${w.fromTime.toISOString()}) to r${w.toRevision} (${w.toTime.toISOString()})`).join('; ');
}

export type PointTarget = { revision: number } | { time: Date };

export interface RestorePath {
  backup: BackupEntry;
  /** From the backup on, up to the one that holds the target (all of them for a time: clocks decide). */
  segments: SegmentEntry[];
}

/**
 * The newest backup at or before the target and the segments from it to
 * the target. A target in a gap or past the last recorded revision (or
 * time) is refused, naming the windows.
 */
export function pathTo(backups: BackupEntry[], segments: SegmentEntry[], target: PointTarget, storeUrl: string): RestorePath {
  const windows = recoveryWindows(backups, segments);
  const what = 'revision' in target ? `revision ${target.revision}` : `time ${target.time.toISOString()}`;
  const refuse = (why: string) =>
    new NotFoundError(`${what} cannot be restored from ${storeUrl}: ${why}. Recoverable windows: ${describeWindows(windows)}`, 'pick a revision or time inside one of the windows (`etcd-shield list --from URL` shows them)');
  const bases = pointBases(backups);
  if (backups.length && !bases.length) {
    throw new NotFoundError(
      `${what} cannot be restored from ${storeUrl}: its backups are all etcd snapshots, and a restore to a revision or time starts from an etcd-shield archive and its change log`,
      'restore a snapshot as it was taken: leave out --to-revision/--to-time, and pick it with --backup NAME or --before TIME',
    );
  }
  const candidates = bases.filter((b) => ('revision' in target ? Number(b.manifest.revision) <= target.revision : b.takenAt.getTime() <= target.time.getTime()));
  if (!candidates.length) throw refuse('it lies before the oldest backup');
  // The newest backup that reaches the target; an older one may reach it across a newer backup's own gap.
  for (let i = candidates.length - 1; i >= 0; i--) {
    const backup = candidates[i]!;
    const chain = chainFrom(segments, Number(backup.manifest.revision));
    if ('revision' in target) {
      if (target.revision === Number(backup.manifest.revision)) return { backup, segments: [] };
      const end = chain.findIndex((s) => s.last >= target.revision);
      if (end >= 0) return { backup, segments: chain.slice(0, end + 1) };
    } else {
      const t = target.time.getTime();
      const end = chain.findIndex((s) => s.lastTime.getTime() >= t);
      if (end >= 0) return { backup, segments: chain.slice(0, end + 1) };
      if (t === backup.takenAt.getTime()) return { backup, segments: [] };
    }
  }
  const last = windows[windows.length - 1]!;
  const past = 'revision' in target ? target.revision > last.toRevision : target.time > last.toTime;
  throw refuse(past ? 'it lies past the last recorded change' : 'it lies in a gap of the change log');
}

/**
 * What retention may delete of the change log: segments that end at or
 * before the oldest kept backup (no kept backup needs them) and the gap
 * markers they lie among. With no backup kept, nothing goes.
 */
export function staleChanges(changes: ChangeCatalogue, keptRevisions: number[]): StoredObject[] {
  if (!keptRevisions.length) return [];
  const oldest = Math.min(...keptRevisions);
  const gapFrom = (key: string) => Number(/^changes-gap-r(\d+)-/.exec(key)?.[1] ?? Infinity);
  return [...changes.segments.filter((s) => s.last <= oldest).map((s) => s.object), ...changes.gaps.filter((g) => gapFrom(g.key) <= oldest)];
}
