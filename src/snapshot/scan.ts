import type { ArchiveItem, KeyRecord, LeaseRecord, RecordRef } from '../archive/types';
import { ArchiveError, CancelledError, ConfigError } from '../errors';
import { BoltFile } from './file';
import { KeyIndex } from '../util/key-index';
import {
  decodeLease,
  FINISHED_COMPACT,
  isTombstoneLength,
  KEY_BUCKET,
  KeyValueSpan,
  KvInt,
  LEASE_BUCKET,
  leaseKeyId,
  META_BUCKET,
  readKeyValue,
  revisionKey,
  revisionMain,
  revisionMainAt,
  SCHEDULED_COMPACT,
} from './mvcc';
import { damaged, type Page } from './page';
import type { LeafWatch } from './structure';
import { type Bucket, findBucket, lastKey, leaves, rootBucket } from './tree';

/** TTL given to leases that keys at an older revision used but the snapshot no longer holds. */
export const REVOKED_LEASE_TTL_SECONDS = 3600;

/** What a snapshot holds, as verify prints it. Revisions are decimal strings, as elsewhere. */
export interface SnapshotFacts {
  /** The revision read: the one asked for, else the newest. */
  revision: string;
  /** The newest revision in the file. */
  currentRevision: string;
  /** The oldest revision still readable (the last compaction); "0" when never compacted. */
  compactRevision: string;
  /** Keys alive at `revision`. */
  keys: number;
  /** Leases in the file's lease bucket. */
  leases: number;
  /** Lease ids that keys at `revision` point at but the lease bucket lacks (revoked since). */
  missingLeases: number;
}

interface EtcdDb {
  file: BoltFile;
  keys: Bucket;
  leases: Bucket | undefined;
  /** Compaction that finished: at most one entry per key at or below it. */
  finished: number;
  /** Oldest readable revision: a scheduled compaction may have removed entries below it. */
  oldest: number;
  current: number;
}

function compactRevision(file: BoltFile, meta: Bucket | undefined, name: string): number {
  if (!meta) return 0;
  for (const { page, start } of leaves(file, meta, Buffer.from(name))) {
    if (start < page.count && page.key(start).toString('latin1') === name) {
      const main = revisionMain(page.value(start));
      if (main === undefined) throw damaged(page.where, `the meta bucket's ${name} is not a revision`);
      return main;
    }
    return 0;
  }
  return 0;
}

async function openEtcdDb(path: string): Promise<EtcdDb> {
  const file = await BoltFile.open(path);
  try {
    return await etcdDbOf(file);
  } catch (err) {
    await file.close();
    throw err;
  }
}

async function etcdDbOf(file: BoltFile): Promise<EtcdDb> {
  const root = rootBucket(file);
  const keys = findBucket(file, root, KEY_BUCKET);
  if (!keys) {
    throw new ArchiveError(
      `${file.path} is a bbolt database but not an etcd one: it has no "${KEY_BUCKET}" bucket`,
      'give an etcd v3 snapshot (`etcdctl snapshot save`, or a member\'s member/snap/db)',
    );
  }
  const meta = findBucket(file, root, META_BUCKET);
  const finished = compactRevision(file, meta, FINISHED_COMPACT);
  const scheduled = compactRevision(file, meta, SCHEDULED_COMPACT);
  const last = await lastKey(file, keys);
  const lastMain = last ? revisionMain(last) : 0;
  if (lastMain === undefined) throw damaged(`the ${KEY_BUCKET} bucket of ${file.path}`, 'its last key is not a revision');
  const oldest = Math.max(finished, scheduled);
  return { file, keys, leases: findBucket(file, root, LEASE_BUCKET), finished, oldest, current: Math.max(lastMain, oldest) };
}

function targetRevision(db: EtcdDb, asked: string | undefined): number {
  if (asked === undefined) return db.current;
  const r = /^\d{1,15}$/.test(asked) ? Number(asked) : NaN;
  const range = `${Math.max(db.oldest, 1)} to ${db.current}`;
  if (!(r >= 1)) throw new ConfigError(`revision "${asked}" is not a positive whole number`, `give a revision from ${range}`);
  if (r < db.oldest) {
    throw new ConfigError(
      `revision ${r} has been compacted away in ${db.file.path}: the oldest revision it holds is ${db.oldest}`,
      `give a revision from ${range}`,
    );
  }
  if (r > db.current) {
    throw new ConfigError(`revision ${r} is newer than ${db.file.path}, whose newest revision is ${db.current}`, `give a revision from ${range}`);
  }
  return r;
}

export interface SnapshotScan {
  bytes: number;
  snapshot: SnapshotFacts;
}

/**
 * Kept between two scans of one file at one revision (verify, then restore),
 * so the second skips the first pass: which keys have several entries, and
 * the ordinal of each one's newest.
 */
export interface SnapshotMemo {
  revision?: number;
  newest?: KeyIndex;
}

/**
 * Pass 1: the newest entry up to r (by ordinal) of each key that may have
 * several after the finished compaction. A key's later entry is a change
 * (version > 1) or a deletion: a key is created (version 1) only when it
 * does not exist. So a key is tracked from its first change or deletion on,
 * and keys only ever created there (a bulk load) cost nothing. Fed the key
 * bucket's leaves in order, by scanSnapshot or by the structure walk.
 */
class NewestEntries {
  readonly found = new KeyIndex();
  private ordinal = 0;
  private readonly kv = new KeyValueSpan();
  private past = false;

  constructor(
    private readonly finished: number,
    private readonly r: number,
  ) {}

  /** Reads a leaf from start; false once an entry is newer than r (so are all later ones). */
  leaf(page: Page, start: number): boolean {
    if (!this.past) this.past = !eachEntry(page, start, this.finished + 1, this.r, this.kv, this.entry);
    return !this.past;
  }

  private readonly entry = (_main: number, tomb: boolean): void => {
    const { kv, found } = this;
    if (tomb || kv.small(KvInt.Version) !== 1 || (found.size > 0 && found.has(kv.key()))) found.set(kv.key(), this.ordinal);
    this.ordinal++;
  };
}

/**
 * Pass 1 done by the structure walk (checkStructure), which reads every
 * leaf of the key bucket anyway: once the walk has finished, memo holds what
 * scanSnapshot's own pass 1 would have found, and that pass is skipped.
 * Undefined when there is nothing to gain, or the file cannot be read as
 * etcd's: the scan then reports that in its turn.
 */
export async function firstPassDuringWalk(file: BoltFile, revision: string | undefined, memo: SnapshotMemo): Promise<LeafWatch | undefined> {
  let db: EtcdDb;
  let r: number;
  try {
    db = await etcdDbOf(file);
    r = targetRevision(db, revision);
  } catch {
    return undefined;
  }
  if (memo.revision === r || r <= db.finished || !('root' in db.keys)) return undefined;
  const pass = new NewestEntries(db.finished, r);
  return {
    bucketRoot: db.keys.root,
    leaf: (page) => void pass.leaf(page, 0),
    done: () => Object.assign(memo, { revision: r, newest: pass.found }),
  };
}

/**
 * Reads an etcd snapshot as the keyspace at one revision, handing over the
 * same items an archive decoder does: the leases first, then the keys alive
 * at that revision (in revision order), then leases that keys point at but
 * the file no longer holds, with REVOKED_LEASE_TTL_SECONDS. Same contract as scanArchive.
 *
 * The `key` bucket is ordered by revision, not by key, so the newest entry
 * of a key can come anywhere after an older one. Compaction leaves at most
 * one entry per key at or below its revision, so only keys changed or
 * deleted after it can have several: a first pass maps those keys to their
 * newest entry (key bytes and a number each, no values: KeyIndex), the
 * second emits.
 */
export async function scanSnapshot(
  path: string,
  visit: (items: ArchiveItem[]) => void | Promise<void>,
  signal?: AbortSignal,
  onRecord?: (record: RecordRef) => void,
  revision?: string,
  memo?: SnapshotMemo,
): Promise<SnapshotScan> {
  const db = await openEtcdDb(path);
  try {
    const r = targetRevision(db, revision);
    const stopped = () => {
      if (signal?.aborted) throw new CancelledError('stopped by a signal while reading the snapshot');
    };
    const known = new Set<string>();
    const leaseItems: ArchiveItem[] = [];
    if (db.leases) {
      for (const { page } of leaves(db.file, db.leases)) {
        await db.file.breather();
        stopped();
        for (let i = 0; i < page.count; i++) {
          const lease = decodeLease(page.value(i), () => `lease ${i} of ${page.where}`);
          if (leaseKeyId(page.key(i)) !== lease.id) throw damaged(page.where, `lease ${i} is filed under another id than its own ${lease.id}`);
          known.add(lease.id);
          const remaining = lease.remainingTtl !== '0' ? lease.remainingTtl : lease.ttl;
          leaseItems.push({ kind: 'lease', lease: { id: lease.id, grantedTtl: lease.ttl, remainingTtl: remaining } });
        }
      }
    }
    await visit(leaseItems);

    const kv = new KeyValueSpan();
    let remembered = memo?.revision === r ? memo.newest : undefined;
    if (!remembered) {
      const pass = new NewestEntries(db.finished, r);
      if (r > db.finished) await forLeaves(db, revisionKey(db.finished + 1), stopped, (page, start) => pass.leaf(page, start));
      remembered = pass.found;
      if (memo) Object.assign(memo, { revision: r, newest: remembered });
    }
    const newest = remembered;

    // Pass 2: every entry up to r; a key's newest one is emitted unless it is a deletion.
    const missing = new Set<string>();
    let keys = 0;
    let items: ArchiveItem[] = [];
    let ordinal = 0;
    const emit = (main: number, tomb: boolean, page: Page, i: number): void => {
      if (!tomb && kv.small(KvInt.ModRevision) !== main) {
        throw damaged(page.where, `entry ${i} is filed under revision ${main} but says it was written at ${kv.decimal(KvInt.ModRevision)}`);
      }
      let latest: boolean;
      if (main <= db.finished) latest = newest.size === 0 || !newest.has(kv.key());
      else {
        const at = newest.size === 0 ? -1 : newest.get(kv.key());
        latest = at === -1 || at === ordinal;
        ordinal++;
      }
      if (tomb || !latest) return;
      keys++;
      if (kv.hasLease()) {
        const lease = kv.decimal(KvInt.Lease);
        if (!known.has(lease)) missing.add(lease);
      }
      // The span is reused for the next entry: onRecord reads it during the call, as with an archive decoder.
      if (onRecord) onRecord(kv);
      else items.push({ kind: 'record', record: keyRecord(kv, main) });
    };
    await forLeaves(
      db,
      undefined,
      stopped,
      (page, start) => eachEntry(page, start, 0, r, kv, emit),
      () => {
        const chunk = items;
        items = [];
        return chunk.length || onRecord ? visit(chunk) : undefined;
      },
    );
    // Revoked after r, so their TTL is lost: the keys come back leased (not for ever), for long enough to outlive the restore.
    const ttl = String(REVOKED_LEASE_TTL_SECONDS);
    const gone: LeaseRecord[] = [...missing].map((id) => ({ id, grantedTtl: ttl, remainingTtl: ttl }));
    await visit(gone.map((lease) => ({ kind: 'lease', lease })));
    const snapshot: SnapshotFacts = {
      revision: String(r),
      currentRevision: String(db.current),
      compactRevision: String(db.oldest),
      keys,
      leases: known.size,
      missingLeases: missing.size,
    };
    return { bytes: db.file.size, snapshot };
  } finally {
    await db.file.close();
  }
}

/**
 * Hands each leaf of the `key` bucket, from the one that holds `from`, to
 * leaf (with the index of its first entry >= from) until it returns false,
 * and runs afterLeaf after each.
 */
async function forLeaves(
  db: EtcdDb,
  from: Buffer | undefined,
  stopped: () => void,
  leaf: (page: Page, start: number) => boolean,
  afterLeaf?: () => void | Promise<void>,
): Promise<void> {
  for (const { page, start } of leaves(db.file, db.keys, from)) {
    // Awaited only when there is something to wait for: a microtask per leaf is a tenth of a pass.
    const breath = db.file.breather();
    if (breath) await breath;
    stopped();
    const more = leaf(page, start);
    const pending = afterLeaf?.();
    if (pending) await pending;
    if (!more) return;
  }
}

/**
 * Reads each entry of a `key` bucket leaf from index start whose main
 * revision is at least min into kv, and runs fn on it (tomb: a deletion);
 * false at the first entry newer than r, since every later one is too.
 */
function eachEntry(
  page: Page,
  start: number,
  min: number,
  r: number,
  kv: KeyValueSpan,
  fn: (main: number, tomb: boolean, page: Page, i: number) => void,
): boolean {
  for (let i = start; i < page.count; i++) {
    const keyLength = page.keyLength(i);
    const main = revisionMainAt(page.buf, page.keyAt(i), keyLength);
    if (main === undefined || page.isBucket(i)) throw damaged(page.where, `entry ${i} of the ${KEY_BUCKET} bucket is not a revision`);
    if (main > r) return false;
    if (main < min) continue;
    const at = page.valueAt(i);
    readKeyValue(page.buf, at, at + page.valueLength(i), kv, i, page);
    fn(main, isTombstoneLength(keyLength), page, i);
  }
  return true;
}

function keyRecord(kv: KeyValueSpan, main: number): KeyRecord {
  return {
    key: kv.key(),
    value: kv.value(),
    createRevision: kv.decimal(KvInt.CreateRevision),
    modRevision: String(main),
    version: kv.decimal(KvInt.Version),
    lease: kv.lease(),
  };
}

/** The newest revision a snapshot file holds, read from its meta and last key only. */
export async function snapshotRevision(path: string): Promise<string> {
  const db = await openEtcdDb(path);
  await db.file.close();
  return String(db.current);
}
