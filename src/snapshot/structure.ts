import { CancelledError } from '../errors';
import type { BoltFile } from './file';
import { damaged, FREELIST, Page, readPgid } from './page';
import { type Bucket, bucketFromValue, rootBucket } from './tree';

/** Deeper than any real bbolt tree; a deeper walk means a loop in a damaged file. */
const MAX_DEPTH = 64;

/** Someone who reads one bucket's leaves while the walk has them (the snapshot scan's first pass), so they are not read again. */
export interface LeafWatch {
  /** The bucket's root page. */
  readonly bucketRoot: number;
  /** Each of its leaves, in key order, once the walk has checked it; the page is a view valid during the call. */
  leaf(page: Page): void;
  /** Called by the walk's caller once the whole walk has passed. */
  done(): void;
}

/**
 * Walks every bucket's B+tree once, without keeping it: each page's id,
 * flags and element bounds (Page and BoltFile.page check those), keys in
 * strictly ascending order within the bounds their parent sets, no page
 * reached twice (no loops, no shared or overlapping overflow), every
 * nested bucket the same way. Throws ArchiveError at the first defect.
 */
export async function checkStructure(file: BoltFile, signal?: AbortSignal, watch?: LeafWatch): Promise<{ pages: number; buckets: number }> {
  const seen = new Uint8Array(Math.ceil(file.meta.pages / 8));
  const stats = { pages: 0, buckets: 0 };
  const claim = (id: number, page: Page) => {
    const span = page.buf.length / file.pageSize;
    stats.pages += span;
    for (let p = id; p < id + span; p++) {
      if (seen[p >>> 3]! & (1 << (p & 7))) throw damaged(page.where, `page ${p} is reached twice in the tree`);
      seen[p >>> 3]! |= 1 << (p & 7);
    }
  };

  // Depth first, with a stack of its own: pages are read synchronously, and
  // an async call per page cost more than checking it.
  const stack: Frame[] = [];
  const enter = (page: Page, low: Buffer | undefined, high: Buffer | undefined, depth: number, bucketRoot: number) => {
    if (depth > MAX_DEPTH) throw damaged(page.where, `the tree is more than ${MAX_DEPTH} levels deep`);
    if (!page.isLeaf && page.count === 0) throw damaged(page.where, 'a branch page has no elements');
    stack.push({ page, owned: false, i: 0, low, high, depth, prev: undefined, bucketRoot });
  };
  const enterBucket = (bucket: Bucket, depth: number) => {
    stats.buckets++;
    if ('inline' in bucket) return enter(bucket.inline, undefined, undefined, depth, -1);
    const page = file.page(bucket.root);
    claim(bucket.root, page);
    enter(page, undefined, undefined, depth, bucket.root);
  };

  enterBucket(rootBucket(file), 0);
  while (stack.length > 0) {
    const breath = file.breather();
    if (breath) await breath;
    if (signal?.aborted) throw new CancelledError('stopped by a signal while checking the snapshot');
    const f = stack[stack.length - 1]!;
    const { page } = f;
    if (f.i >= page.count) {
      stack.pop();
      // Still valid: checking a leaf reads no other page, unless it holds a nested bucket, and then it was copied first.
      if (page.isLeaf && f.bucketRoot === watch?.bucketRoot) watch.leaf(page);
      continue;
    }
    // This page's elements up to the next one to descend into (a child page, a nested bucket).
    while (f.i < page.count) {
      const i = f.i++;
      const key = page.key(i);
      if (f.prev && Buffer.compare(f.prev, key) >= 0) throw damaged(page.where, `its keys ${i - 1} and ${i} are out of order`);
      if ((f.low && Buffer.compare(key, f.low) < 0) || (f.high && Buffer.compare(key, f.high) >= 0)) {
        throw damaged(page.where, `key ${i} lies outside the range its parent branch gives it`);
      }
      f.prev = key;
      if (page.isLeaf && !page.isBucket(i)) {
        page.value(i); // bounds check
        continue;
      }
      // Going down: this page is held while others are read into the file's reused buffers.
      if (!f.owned) {
        f.page = page.owned();
        f.owned = true;
        f.prev = f.page.key(i);
      }
      const held = f.page;
      if (held.isLeaf) {
        enterBucket(bucketFromValue(held.value(i), f.prev.toString('latin1'), held.where), f.depth + 1);
        break;
      }
      const id = held.child(i);
      const child = file.page(id);
      claim(id, child);
      // Lookups send keys below the first branch key to the first child, so only later keys bound from below.
      enter(child, i === 0 ? f.low : f.prev, i + 1 < held.count ? held.key(i + 1) : f.high, f.depth + 1, f.bucketRoot);
      break;
    }
  }

  if (file.meta.freelist !== -1) {
    const raw = file.rawPage(file.meta.freelist);
    const where = `the freelist, page ${file.meta.freelist} of ${file.path}`;
    if (readPgid(raw, 0) !== file.meta.freelist || raw.readUInt16LE(8) !== FREELIST) throw damaged(where, 'the page is not a freelist page');
  }
  return stats;
}

interface Frame {
  page: Page;
  /** Whether page has bytes of its own (Page.owned), or is a view of the file's read buffer. */
  owned: boolean;
  /** The next element to check. */
  i: number;
  /** Keys of this page lie in [low, high), as its parent branch says. */
  low: Buffer | undefined;
  high: Buffer | undefined;
  depth: number;
  prev: Buffer | undefined;
  /** Root page of the bucket this page belongs to; -1 for an inline bucket. */
  bucketRoot: number;
}
