import type { BoltFile } from './file';
import { BUCKET_HEADER, damaged, Page, readPgid } from './page';

/** A bucket's B+tree: a root page in the file, or an inline page inside its parent's value. */
export type Bucket = { root: number; name: string } | { inline: Page; name: string };

export function rootBucket(file: BoltFile): Bucket {
  return { root: file.meta.root, name: 'the root bucket' };
}

/** The nested bucket a leaf element's value describes. */
export function bucketFromValue(value: Buffer, name: string, where: string): Bucket {
  if (value.length < BUCKET_HEADER) throw damaged(where, `bucket ${name}'s header is cut short`);
  const root = readPgid(value, 0);
  if (root !== 0) return { root, name };
  // Kept for as long as the bucket is, beyond the read buffer it came in.
  return { inline: new Page(Buffer.from(value.subarray(BUCKET_HEADER)), `the inline bucket ${name} in ${where}`), name };
}

function rootPage(file: BoltFile, b: Bucket): Page {
  return 'inline' in b ? b.inline : file.page(b.root);
}

/** The bucket called name inside parent, or undefined. */
export function findBucket(file: BoltFile, parent: Bucket, name: string): Bucket | undefined {
  const key = Buffer.from(name);
  let page = rootPage(file, parent);
  while (!page.isLeaf) {
    if (page.count === 0) throw damaged(page.where, 'a branch page has no elements');
    page = file.page(page.child(page.childFor(key)));
  }
  const i = page.lowerBound(key);
  if (i >= page.count || !page.key(i).equals(key) || !page.isBucket(i)) return undefined;
  return bucketFromValue(page.value(i), name, page.where);
}

/**
 * The bucket's leaf pages in key order, from the one that holds `from` (or
 * the first), read synchronously: the caller gives the event loop its turns
 * (BoltFile.breather). Only the path from the root to the current leaf is held.
 * Each leaf comes with the index of its first element >= from.
 */
export function* leaves(file: BoltFile, bucket: Bucket, from?: Buffer): Generator<{ page: Page; start: number }> {
  const stack: { page: Page; i: number }[] = [];
  let page = rootPage(file, bucket);
  // Down to the first leaf, then after each leaf up to the next unvisited child.
  for (;;) {
    while (!page.isLeaf) {
      if (page.count === 0) throw damaged(page.where, 'a branch page has no elements');
      const i = from ? page.childFor(from) : 0;
      stack.push({ page: page.owned(), i });
      page = file.page(page.child(i));
    }
    yield { page, start: from ? page.lowerBound(from) : 0 };
    from = undefined;
    let top = stack[stack.length - 1];
    while (top && top.i + 1 >= top.page.count) {
      stack.pop();
      top = stack[stack.length - 1];
    }
    if (!top) return;
    top.i++;
    page = file.page(top.page.child(top.i));
  }
}

/** The bucket's last key, or undefined when it is empty. */
export async function lastKey(file: BoltFile, bucket: Bucket): Promise<Buffer | undefined> {
  let page = rootPage(file, bucket);
  while (!page.isLeaf) {
    if (page.count === 0) throw damaged(page.where, 'a branch page has no elements');
    page = file.page(page.child(page.count - 1));
  }
  // A leaf emptied by deletes may remain at the right edge; bbolt's cursor steps back then.
  // Copied: the file reuses its read buffers.
  if (page.count === 0) {
    let last: Buffer | undefined;
    for (const { page: p } of leaves(file, bucket)) {
      if (p.count) last = Buffer.from(p.key(p.count - 1));
      await file.breather();
    }
    return last;
  }
  return Buffer.from(page.key(page.count - 1));
}
