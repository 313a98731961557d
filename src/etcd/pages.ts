import { CancelledError } from '../errors';
import type { Connection } from './connect';
import { explainEtcdError } from './explain';
import { range as rangeRequest } from './range';
import type { KeyValues, RangeReply } from './range-codec';
import { after, KeyDensity, pastPrefix } from './boundaries';

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
  kvs: KeyValues;
  /** The revision every page is pinned at. */
  revision: string;
  clusterId: string;
  memberId: string;
  /** Keys in the whole range at that revision (from the first page). */
  total: number;
  /** Bytes of keys and values in this page. */
  bytes: number;
}

/** One Range of [key, end), at most `limit` keys. */
export type RangeFetch = (key: Buffer, end: Buffer, limit: number, revision?: string) => Promise<RangeReply>;

export const DEFAULT_PAGE_BYTES = 4 * 1024 * 1024;
const FIRST_LIMIT = 16;
const MAX_LIMIT = 10_000;
/** Keys-only pages carry no values, so they can hold more keys. */
const MAX_KEYS_ONLY_LIMIT = 50_000;
/** Pages whose largest key-value sizes the next page is planned from. */
const SIZE_WINDOW = 4;
/** How much the limit may grow from one request to the next. */
const LIMIT_GROWTH = 4;
/** A value this many times larger than the largest in the window may stand alone (see PageSizer). */
const LONE_VALUE_RATIO = 16;

/** Requests in flight while the caller works on the current page. */
const PAGES_AHEAD = 3;
/** Pages are planned a little short of the limit: one that ends early costs nothing, one that fills up needs another request for its rest. */
const GUESS_FILL = 0.8;

/** The range that holds exactly the keys starting with prefix. */
export function prefixRange(prefix: string): { key: Buffer; range_end: Buffer } {
  if (prefix === '') return { key: Buffer.from([0]), range_end: Buffer.from([0]) };
  const key = Buffer.from(prefix);
  // All 0xff: to the end of the keyspace.
  return { key, range_end: pastPrefix(key) ?? Buffer.from([0]) };
}

const lastKey = (kvs: KeyValues) => kvs.key(kvs.length - 1);

/**
 * Reads every key under the prefix as of one revision, page by page. Each
 * request covers [start, end) with a guessed end (boundaries.ts), so the
 * next ones can be sent before the current page is handed over: etcd works
 * while the caller encodes, PAGES_AHEAD requests at a time.
 */
export function readPages(conn: Connection, opts: PageOptions): AsyncGenerator<Page> {
  const fetch: RangeFetch = (key, end, limit, revision) =>
    rangeRequest(conn, { key, rangeEnd: end, limit, revision, keysOnly: opts.keysOnly ?? false }).catch((err: unknown) => {
      throw explainEtcdError(err, { config: conn.config, action: 'read', prefix: opts.prefix });
    });
  return plannedPages(fetch, opts);
}

/** readPages over any Range: the planner alone, which bench/plan.ts runs against a model of etcd's index. */
export async function* plannedPages(fetch: RangeFetch, opts: PageOptions): AsyncGenerator<Page> {
  const budget = opts.pageBytes ?? DEFAULT_PAGE_BYTES;
  const maxLimit = opts.keysOnly ? MAX_KEYS_ONLY_LIMIT : MAX_LIMIT;
  const range = prefixRange(opts.prefix);

  const first = await fetch(range.key, range.range_end, FIRST_LIMIT, opts.revision);
  const revision = opts.revision ?? first.revision;
  const total = first.count;

  const sizer = new PageSizer(budget, maxLimit);
  const density = new KeyDensity();

  /**
   * What is left to read, in key order: each span is [start, end), some
   * already requested. A span is split at a guessed end when it is
   * requested, so each request asks for about one page.
   */
  const spans: Span[] = [];
  const fillAhead = () => {
    let inFlight = 0;
    for (let i = 0; i < spans.length; i++) {
      const span = spans[i]!;
      if (span.reply) {
        inFlight++;
        continue;
      }
      // The first span is always requested: the caller waits for it next. Past a lone large value, only it, until its reply tells whether more follow.
      if (i > 0 && (inFlight >= PAGES_AHEAD || sizer.probing)) return;
      const limit = sizer.limit;
      // Spans keep their usual width past a lone large value: only the limit drops for it.
      const want = Math.ceil(sizer.planned * GUESS_FILL);
      const group = span.group;
      // The group's keys, less an estimate for its pieces still in flight.
      const keys = group && Math.max(1, group.keys - group.inFlight * want);
      // A span known to fit in one page is asked for whole.
      const whole = group !== undefined && group.inFlight === 0 && group.keys <= limit;
      const end = whole ? undefined : density.guessEnd(span.start, span.end, want, keys);
      // Without a guess the request may cost etcd a long walk: only when the caller needs it next.
      if (!whole && !end && i > 0) return;
      if (end) {
        spans.splice(i + 1, 0, { start: end, end: span.end, group });
        span.end = end;
        span.want = want;
      }
      if (group) group.inFlight++;
      span.reply = fetch(span.start, span.end, limit, revision);
      // Failure is reported when the page is awaited; don't let it go unhandled meanwhile.
      span.reply.catch(() => undefined);
      inFlight++;
    }
  };

  let reply = first;
  let current: Span = { start: range.key, end: range.range_end };
  for (;;) {
    if (opts.signal?.aborted) throw new CancelledError('stopped by a signal while reading from etcd');
    const kvs = reply.kvs;
    sizer.observe(kvs);
    const full = reply.more && kvs.length > 0;
    density.observe(current.start, current.end, kvs, full, current.want);
    // etcd counts every key of the span, not just those it returns, so what
    // is left of a span is known, and guesses can go by it.
    if (current.group) {
      current.group.keys -= reply.count;
      current.group.inFlight--;
    }
    if (full) spans.unshift({ start: after(lastKey(kvs)), end: current.end, group: { keys: reply.count - kvs.length, inFlight: 0 } });
    fillAhead();
    yield { kvs, revision, clusterId: reply.clusterId, memberId: reply.memberId, total, bytes: kvs.bytes };
    const next = spans.shift();
    if (!next) return;
    current = next;
    reply = await next.reply!;
  }
}

/**
 * Keys per request. etcd has no byte limit on a range, only a key count, so
 * each request is planned as if every key were as large as the largest seen
 * lately, growing at most 4x a request: a run of big values after small ones
 * cannot turn into a huge response.
 *
 * A value far larger than the largest before it drops the limit, and only the
 * next request goes out: if its values are small again, the big one stood
 * alone (a run of them would show), and the limit is what it was before.
 */
class PageSizer {
  limit = FIRST_LIMIT;
  /** The limit to return to if the large value just seen stands alone. */
  private before?: number;
  private readonly recentLargest: number[] = [];

  constructor(private readonly budget: number, private readonly maxLimit: number) {}

  /** Waiting to learn whether a large value stands alone. */
  get probing(): boolean {
    return this.before !== undefined;
  }

  /** The limit pages are planned for (their guessed ends): the usual one, past a lone large value. */
  get planned(): number {
    return this.before ?? this.limit;
  }

  observe(kvs: KeyValues): void {
    if (kvs.length === 0) return;
    const window = this.recentLargest;
    const lately = Math.max(0, ...window);
    let grow = this.limit * LIMIT_GROWTH;
    if (this.before !== undefined && kvs.largest * LONE_VALUE_RATIO <= lately) {
      window.length = 0;
      grow = this.before;
    }
    this.before = lately > 0 && kvs.largest >= lately * LONE_VALUE_RATIO && this.before === undefined ? this.limit : undefined;
    window.push(kvs.largest);
    if (window.length > SIZE_WINDOW) window.shift();
    const bySize = Math.floor(this.budget / Math.max(1, ...window));
    this.limit = Math.max(1, Math.min(this.maxLimit, grow, bySize));
  }
}

interface Span {
  start: Buffer;
  end: Buffer;
  reply?: Promise<RangeReply>;
  /** The keys its guessed end aimed at. */
  want?: number;
  /** The span this one was split from, when its count is known. */
  group?: Group;
}

/** A span whose key count etcd gave, as it is split into pages. */
interface Group {
  /** Keys in its pieces not yet answered. */
  keys: number;
  /** Its pieces requested but not yet answered. */
  inFlight: number;
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
