import { CancelledError } from '../errors';
import type { BoltFile } from './file';
import { damaged, FREELIST, Page, readPgid } from './page';
import { type Bucket, bucketFromValue, rootBucket } from './tree';

/** Deeper than any real bbolt tree; a deeper walk means a loop in a damaged file. */
const MAX_DEPTH = 64;

/**
 * Walks every bucket's B+tree once, without keeping it: each page's id,
 * flags and element bounds (Page and BoltFile.page check those), keys in
 * strictly ascending order within the bounds their parent sets, no page
 * reached twice (no loops, no shared or overlapping overflow), every
 * nested bucket the same way. Throws ArchiveError at the first defect.
 */
export async function checkStructure(file: BoltFile, signal?: AbortSignal): Promise<{ pages: number; buckets: number }> {
  const seen = new Uint8Array(Math.ceil(file.meta.pages / 8));
  const stats = { pages: 0, buckets: 0 };
  const claim = (id: number, span: number, where: string) => {
    stats.pages += span;
    for (let p = id; p < id + span; p++) {
      if (seen[p >>> 3]! & (1 << (p & 7))) throw damaged(where, `page ${p} is reached twice in the tree`);
      seen[p >>> 3]! |= 1 << (p & 7);
    }
  };

  const walkBucket = async (bucket: Bucket, depth: number): Promise<void> => {
    stats.buckets++;
    if ('inline' in bucket) return walkPage(bucket.inline, undefined, undefined, depth);
    const page = await file.page(bucket.root);
    claim(bucket.root, page.buf.length / file.pageSize, page.where);
    return walkPage(page, undefined, undefined, depth);
  };

  const walkPage = async (page: Page, low: Buffer | undefined, high: Buffer | undefined, depth: number): Promise<void> => {
    if (signal?.aborted) throw new CancelledError('stopped by a signal while checking the snapshot');
    if (depth > MAX_DEPTH) throw damaged(page.where, `the tree is more than ${MAX_DEPTH} levels deep`);
    if (!page.isLeaf && page.count === 0) throw damaged(page.where, 'a branch page has no elements');
    let prev: Buffer | undefined;
    for (let i = 0; i < page.count; i++) {
      const key = page.key(i);
      if (prev && Buffer.compare(prev, key) >= 0) throw damaged(page.where, `its keys ${i - 1} and ${i} are out of order`);
      if ((low && Buffer.compare(key, low) < 0) || (high && Buffer.compare(key, high) >= 0)) {
        throw damaged(page.where, `key ${i} lies outside the range its parent branch gives it`);
      }
      prev = key;
      if (page.isLeaf) {
        if (page.isBucket(i)) await walkBucket(bucketFromValue(page.value(i), key.toString('latin1'), page.where), depth + 1);
        else page.value(i); // bounds check
      } else {
        const id = page.child(i);
        const child = await file.page(id);
        claim(id, child.buf.length / file.pageSize, child.where);
        // Lookups send keys below the first branch key to the first child, so only later keys bound from below.
        await walkPage(child, i === 0 ? low : key, i + 1 < page.count ? page.key(i + 1) : high, depth + 1);
      }
    }
  };

  await walkBucket(rootBucket(file), 0);
  if (file.meta.freelist !== -1) {
    const raw = await file.rawPage(file.meta.freelist);
    const where = `the freelist, page ${file.meta.freelist} of ${file.path}`;
    if (readPgid(raw, 0) !== file.meta.freelist || raw.readUInt16LE(8) !== FREELIST) throw damaged(where, 'the page is not a freelist page');
  }
  return stats;
}
