import { CancelledError } from '../errors';
import type { Connection } from './connect';
import { explainEtcdError } from './explain';
import { range as rangeRequest } from './range';
import type { KeyValues, RangeReply } from './range-codec';
import { after, lastKey, Sampling, segmentEnd, STRIDE } from './samples';

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
  kvs: KeyValues;
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
/** Keys-only pages carry no values, so they can hold more keys. */
const MAX_KEYS_ONLY_LIMIT = 50_000;
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

/** Sample page boundaries (samples.ts) when a range looks like more pages than this; below it the pass costs more than it saves. */
const SAMPLE_ABOVE_PAGES = 20;

/** Requests in flight at once when sampled boundaries make pages independent. */
const SEGMENTS_AHEAD = 2;

/**
 * Reads every key under the prefix as of one revision, page by page. Later
 * pages are requested before the current one is handed over, so etcd works
 * while the caller encodes: one ahead when each page starts after the last
 * key of the one before, SEGMENTS_AHEAD when sampled boundaries say where
 * pages start.
 */
export async function* readPages(conn: Connection, opts: PageOptions): AsyncGenerator<Page> {
  const budget = opts.pageBytes ?? DEFAULT_PAGE_BYTES;
  const keysOnly = opts.keysOnly ?? false;
  const maxLimit = keysOnly ? MAX_KEYS_ONLY_LIMIT : MAX_LIMIT;
  const range = prefixRange(opts.prefix);
  const fetch = (key: Buffer, end: Buffer, limit: number, revision?: string, onlyKeys = keysOnly): Promise<RangeReply> =>
    rangeRequest(conn, { key, rangeEnd: end, limit, revision, keysOnly: onlyKeys }).catch((err: unknown) => {
      throw explainEtcdError(err, { config: conn.config, action: 'read', prefix: opts.prefix });
    });

  const first = await fetch(range.key, range.range_end, FIRST_LIMIT, opts.revision);
  const revision = opts.revision ?? first.revision;
  const total = first.count;
  const stride = opts.sampleStride ?? STRIDE;
  const expectedPages = total / Math.min(maxLimit, Math.max(1, Math.floor(budget / Math.max(1, first.kvs.largest))));
  const sampling =
    !keysOnly && first.more && expectedPages > (opts.sampleAbovePages ?? SAMPLE_ABOVE_PAGES) && first.kvs.length > 0
      ? new Sampling({
          start: after(lastKey(first.kvs)),
          end: range.range_end,
          stride,
          budget,
          firstPage: first.kvs,
          fetchKeys: (start, end, limit) => fetch(start, end, limit, revision, true),
        })
      : undefined;
  const samples = sampling?.samples ?? [];

  // etcd has no byte limit on a range, only a key count. Each request is
  // planned as if every key were as large as the largest seen lately, growing
  // at most 4x a request, so a run of big values after small ones cannot turn
  // into a huge response.
  let limit = FIRST_LIMIT;
  const recentLargest: number[] = [];

  /** Requests in flight, in key order; each covers [its start, end). */
  const queue: { end: Buffer; reply: Promise<RangeReply> }[] = [];
  const request = (start: Buffer, end: Buffer, front = false) => {
    const reply = fetch(start, end, limit, revision);
    // Failure is reported when the page is awaited; don't let it go unhandled meanwhile.
    reply.catch(() => undefined);
    if (front) queue.unshift({ end, reply });
    else queue.push({ end, reply });
  };
  /** Where the first segment not yet requested starts (sampled ranges only). */
  let unrequested: Buffer | undefined;
  const fillAhead = async () => {
    while (unrequested && queue.length < SEGMENTS_AHEAD) {
      let end = segmentEnd(samples, unrequested, limit, stride);
      if (!end && sampling && !sampling.done) {
        // The pass has not got that far: a shorter segment up to its last
        // sample, or, with nothing else in flight, wait for it.
        const last = samples[samples.length - 1];
        if (last && Buffer.compare(last, unrequested) > 0) end = last;
        else if (queue.length > 0) return;
        else {
          await sampling.more();
          continue;
        }
      }
      end ??= range.range_end;
      request(unrequested, end);
      unrequested = end === range.range_end ? undefined : end;
    }
  };

  try {
    let reply = first;
    let end = range.range_end;
    for (;;) {
      if (opts.signal?.aborted) throw new CancelledError('stopped by a signal while reading from etcd');
      const kvs = reply.kvs;
      if (kvs.length > 0) {
        recentLargest.push(kvs.largest);
        if (recentLargest.length > SIZE_WINDOW) recentLargest.shift();
      }
      limit = Math.max(1, Math.min(maxLimit, limit * 4, Math.floor(budget / Math.max(1, ...recentLargest))));
      // The rest of this request's span comes next; with sampling, the first
      // reply's rest is split into segments instead.
      if (reply.more && kvs.length > 0) {
        if (reply === first && sampling) unrequested = after(lastKey(kvs));
        else request(after(lastKey(kvs)), end, true);
      }
      await fillAhead();
      yield { kvs, revision, clusterId: reply.clusterId, memberId: reply.memberId, total, bytes: kvs.bytes, samples: samples.length };
      const next = queue.shift();
      if (!next) return;
      end = next.end;
      reply = await next.reply;
    }
  } finally {
    sampling?.stop();
  }
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
