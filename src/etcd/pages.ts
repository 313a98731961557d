import type { IKeyValue, IRangeResponse } from 'etcd3';
import { CancelledError } from '../errors';
import type { Connection } from './connect';
import { explainEtcdError } from './explain';
import { collectGarbageNow } from '../util/gc';

export interface PageOptions {
  prefix: string;
  /** Byte budget for one response; the key count per page adapts to stay under it. */
  pageBytes?: number;
  /** Read at this revision; default: the revision of the first page. */
  revision?: string;
  keysOnly?: boolean;
  signal?: AbortSignal;
  /** Sample page boundaries when the range looks like more pages than this (tests lower it). */
  sampleAbovePages?: number;
  /** Keys between two samples. */
  sampleStride?: number;
}

export interface Page {
  kvs: IKeyValue[];
  /** The revision every page is pinned at. */
  revision: string;
  clusterId: string;
  memberId: string;
  /** Keys in the whole range at that revision (from the first page). */
  total: number;
  /** Bytes of keys and values in this page. */
  bytes: number;
  /** Sampled keys that bound the pages (0 when the range is small). */
  samples: number;
}

export const DEFAULT_PAGE_BYTES = 3 * 1024 * 1024;
const FIRST_LIMIT = 16;
const MAX_LIMIT = 10_000;
/** Pages whose largest key-value sizes the next page is planned from. */
const SIZE_WINDOW = 4;

/** The range that holds exactly the keys starting with prefix. */
export function prefixRange(prefix: string): { key: Buffer; range_end: Buffer } {
  if (prefix === '') return { key: Buffer.from([0]), range_end: Buffer.from([0]) };
  const key = Buffer.from(prefix);
  const end = Buffer.from(key);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return { key, range_end: end.subarray(0, i + 1) };
    }
  }
  return { key, range_end: Buffer.from([0]) }; // all 0xff: to the end of the keyspace
}

export function pageBytesOf(kvs: readonly IKeyValue[]): { bytes: number; largest: number } {
  let bytes = 0;
  let largest = 0;
  for (const kv of kvs) {
    const n = kv.key.length + (kv.value?.length ?? 0);
    bytes += n;
    if (n > largest) largest = n;
  }
  return { bytes, largest };
}

const ZERO = Buffer.from([0]);
const after = (key: Buffer) => Buffer.concat([key, ZERO]);

/**
 * etcd 3.4 walks its index from a request's start key to its range_end on
 * every request, whatever the limit, so plain paging costs grow with the
 * square of the page count. When a range looks like more pages than this,
 * a keys-only pass first samples every STRIDE-th key, and each page then
 * ends at a sampled key about a page ahead. Below it, the pass costs more
 * than it saves (docs/performance.md).
 */
const SAMPLE_ABOVE_PAGES = 100;
const STRIDE = 1000;
const SAMPLE_PAGE_KEYS = 50_000;
/** Keys-only pages carry no values, so they can hold more keys. */
const MAX_KEYS_ONLY_LIMIT = 50_000;

/** The first sampled key at least `keys` keys past start, or undefined past the last sample. */
export function boundaryAfter(samples: readonly Buffer[], start: Buffer, keys: number, stride = STRIDE): Buffer | undefined {
  let lo = 0;
  let hi = samples.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (Buffer.compare(samples[mid]!, start) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return samples[lo + Math.ceil(keys / stride)];
}

/**
 * Reads every key under the prefix as of one revision, page by page. The
 * request for the next page is sent before the current one is handed over,
 * so etcd works while the caller encodes.
 */
export async function* readPages(conn: Connection, opts: PageOptions): AsyncGenerator<Page> {
  const budget = opts.pageBytes ?? DEFAULT_PAGE_BYTES;
  const keysOnly = opts.keysOnly ?? false;
  const maxLimit = keysOnly ? MAX_KEYS_ONLY_LIMIT : MAX_LIMIT;
  const range = prefixRange(opts.prefix);
  const fetch = (key: Buffer, end: Buffer, limit: number, revision?: string, onlyKeys = keysOnly): Promise<IRangeResponse> =>
    conn.client.kv.range({ key, range_end: end, limit, revision, keys_only: onlyKeys }).catch((err: unknown) => {
      throw explainEtcdError(err, { config: conn.config, action: 'read', prefix: opts.prefix });
    });

  let limit = FIRST_LIMIT;
  const recentLargest: number[] = [];
  let end = range.range_end;
  let response = await fetch(range.key, end, limit, opts.revision);
  const revision = opts.revision ?? response.header.revision;
  const total = Number(response.count);
  const stride = opts.sampleStride ?? STRIDE;
  const firstLargest = pageBytesOf(response.kvs).largest;
  const expectedPages = total / Math.min(maxLimit, Math.max(1, Math.floor(budget / Math.max(1, firstLargest))));
  const samples =
    !keysOnly && response.more && expectedPages > (opts.sampleAbovePages ?? SAMPLE_ABOVE_PAGES) && response.kvs.length > 0
      ? await sampleKeys(after(response.kvs[response.kvs.length - 1]!.key), range.range_end, revision, stride, fetch, opts.signal)
      : [];
  for (;;) {
    if (opts.signal?.aborted) throw new CancelledError('stopped by a signal while reading from etcd');
    const kvs = response.kvs;
    const { bytes, largest } = pageBytesOf(kvs);
    // More keys before `end`: go on after the last one; none: go on from `end`, unless it is the range's end.
    const start = response.more && kvs.length > 0 ? after(kvs[kvs.length - 1]!.key) : end !== range.range_end ? end : undefined;
    let next: Promise<IRangeResponse> | undefined;
    if (start) {
      // etcd has no byte limit on a range, only a key count. Plan the next
      // page as if every key were as large as the largest seen lately, and
      // grow at most 4x a page, so a run of big values after small ones
      // cannot turn into a huge response.
      if (kvs.length > 0) {
        recentLargest.push(largest);
        if (recentLargest.length > SIZE_WINDOW) recentLargest.shift();
      }
      const perKey = Math.max(1, ...recentLargest);
      limit = Math.max(1, Math.min(maxLimit, limit * 4, Math.floor(budget / perKey)));
      end = boundaryAfter(samples, start, limit, stride) ?? range.range_end;
      next = fetch(start, end, limit, revision);
      // Failure is reported when the page is awaited; don't let it go unhandled meanwhile.
      next.catch(() => undefined);
    }
    yield {
      kvs,
      revision,
      clusterId: response.header.cluster_id,
      memberId: response.header.member_id,
      total,
      bytes,
      samples: samples.length,
    };
    if (!next) return;
    response = await next;
  }
}

/** Every stride-th key from start to end at the revision, from a keys-only pass. */
async function sampleKeys(
  start: Buffer,
  end: Buffer,
  revision: string,
  stride: number,
  fetch: (key: Buffer, end: Buffer, limit: number, revision: string, keysOnly: boolean) => Promise<IRangeResponse>,
  signal?: AbortSignal,
): Promise<Buffer[]> {
  const samples: Buffer[] = [];
  let seen = 0;
  let from: Buffer | undefined = start;
  while (from) {
    if (signal?.aborted) throw new CancelledError('stopped by a signal while reading from etcd');
    const r = await fetch(from, end, SAMPLE_PAGE_KEYS, revision, true);
    for (const kv of r.kvs) if (++seen % stride === 0) samples.push(Buffer.from(kv.key));
    collectGarbageNow();
    from = r.more && r.kvs.length > 0 ? after(r.kvs[r.kvs.length - 1]!.key) : undefined;
  }
  return samples;
}

/** How many keys the prefix holds now, and at which revision. */
export async function countKeys(conn: Connection, prefix: string): Promise<{ count: number; revision: string }> {
  try {
    const r = await conn.client.kv.range({ ...prefixRange(prefix), count_only: true });
    return { count: Number(r.count), revision: r.header.revision };
  } catch (err) {
    throw explainEtcdError(err, { config: conn.config, action: 'read', prefix });
  }
}
