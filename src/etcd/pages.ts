import type { IKeyValue, IRangeResponse } from 'etcd3';
import { CancelledError } from '../errors';
import type { Connection } from './connect';
import { explainEtcdError } from './explain';

export interface PageOptions {
  prefix: string;
  /** Byte budget for one response; the key count per page adapts to stay under it. */
  pageBytes?: number;
  /** Read at this revision; default: the revision of the first page. */
  revision?: string;
  keysOnly?: boolean;
  signal?: AbortSignal;
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
}

export const DEFAULT_PAGE_BYTES = 4 * 1024 * 1024;
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

/**
 * Reads every key under the prefix as of one revision, page by page. The
 * request for the next page is sent before the current one is handed over,
 * so etcd works while the caller encodes.
 */
export async function* readPages(conn: Connection, opts: PageOptions): AsyncGenerator<Page> {
  const budget = opts.pageBytes ?? DEFAULT_PAGE_BYTES;
  const { key: start, range_end } = prefixRange(opts.prefix);
  const fetch = (key: Buffer, limit: number, revision?: string): Promise<IRangeResponse> =>
    conn.client.kv
      .range({ key, range_end, limit, revision, keys_only: opts.keysOnly ?? false })
      .catch((err: unknown) => {
        throw explainEtcdError(err, { config: conn.config, action: 'read', prefix: opts.prefix });
      });

  let limit = FIRST_LIMIT;
  const recentLargest: number[] = [];
  let response = await fetch(start, limit, opts.revision);
  const revision = opts.revision ?? response.header.revision;
  const total = Number(response.count);
  for (;;) {
    if (opts.signal?.aborted) throw new CancelledError('stopped by a signal while reading from etcd');
    const kvs = response.kvs;
    const { bytes, largest } = pageBytesOf(kvs);
    let next: Promise<IRangeResponse> | undefined;
    if (response.more && kvs.length > 0) {
      // etcd has no byte limit on a range, only a key count. Plan the next
      // page as if every key were as large as the largest seen lately, and
      // grow at most 4x a page, so a run of big values after small ones
      // cannot turn into a huge response.
      recentLargest.push(largest);
      if (recentLargest.length > SIZE_WINDOW) recentLargest.shift();
      const perKey = Math.max(1, ...recentLargest);
      limit = Math.max(1, Math.min(MAX_LIMIT, limit * 4, Math.floor(budget / perKey)));
      const after = Buffer.concat([kvs[kvs.length - 1]!.key, Buffer.from([0])]);
      next = fetch(after, limit, revision);
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
    };
    if (!next) return;
    response = await next;
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
