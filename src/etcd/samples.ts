import type { KeyValues, RangeReply } from './range-codec';

/**
 * etcd 3.4 walks its index from a request's start key to its range_end on
 * every request, whatever the limit, so plain paging costs grow with the
 * square of the page count. For a large range, a keys-only pass samples
 * every STRIDE-th key, and each page then ends at a sample about a page
 * ahead, so etcd walks about one page per request (docs/performance.md).
 */
export const STRIDE = 250;
const MAX_SAMPLE_PAGE_KEYS = 50_000;

const ZERO = Buffer.from([0]);
export const after = (key: Buffer) => Buffer.concat([key, ZERO]);
export const lastKey = (kvs: KeyValues) => kvs.key(kvs.length - 1);

/**
 * Where a page from start should end so that it holds at most `keys` keys:
 * the farthest sample that close (but at least the next one), or undefined
 * past the last sample.
 */
export function segmentEnd(samples: readonly Buffer[], start: Buffer, keys: number, stride = STRIDE): Buffer | undefined {
  let lo = 0;
  let hi = samples.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (Buffer.compare(samples[mid]!, start) <= 0) lo = mid + 1;
    else hi = mid;
  }
  // samples[lo] is the first past start, so samples[lo - 1 + m] is at most m strides away.
  return samples[lo - 1 + Math.max(1, Math.floor(keys / stride))];
}

function largestKey(kvs: KeyValues): number {
  let n = 0;
  for (let i = 0; i < kvs.length; i++) n = Math.max(n, kvs.keyLength(i));
  return n;
}

export interface SamplingOptions {
  start: Buffer;
  end: Buffer;
  stride: number;
  /** Byte budget of one reply, and a page of the range to size the first request from. */
  budget: number;
  firstPage: KeyValues;
  /** A keys-only Range at the pinned revision. */
  fetchKeys: (start: Buffer, end: Buffer, limit: number) => Promise<RangeReply>;
}

/**
 * The keys-only pass, running while the data pages are read: `samples`
 * grows as it goes, so pages can be planned up to the last sample so far.
 * If the pass fails, it just ends: pages past its last sample are then
 * unbounded, slower but just as complete, and the data requests report
 * any error that matters.
 */
export class Sampling {
  readonly samples: Buffer[] = [];
  done = false;
  private stopped = false;
  private wake: () => void = () => undefined;
  private progress: Promise<void>;

  constructor(private readonly opts: SamplingOptions) {
    this.progress = this.nextProgress();
    void this.run();
  }

  /** Waits for more samples or the end of the pass. */
  more(): Promise<void> {
    return this.done ? Promise.resolve() : this.progress;
  }

  /** The reader is done (or gave up): no more requests. */
  stop(): void {
    this.stopped = true;
  }

  private nextProgress(): Promise<void> {
    return new Promise<void>((resolve) => (this.wake = resolve));
  }

  private async run(): Promise<void> {
    const { stride, budget, firstPage, fetchKeys } = this.opts;
    let seen = 0;
    let largest = largestKey(firstPage);
    let limit = firstPage.length;
    let from: Buffer | undefined = this.opts.start;
    try {
      while (from && !this.stopped) {
        // Keys vary less than values, so the growth per request is looser than for data pages.
        limit = Math.max(1, Math.min(MAX_SAMPLE_PAGE_KEYS, limit * 16, Math.floor(budget / Math.max(1, largest))));
        const r = await fetchKeys(from, this.opts.end, limit);
        for (let i = 0; i < r.kvs.length; i++) if (++seen % stride === 0) this.samples.push(Buffer.from(r.kvs.key(i)));
        largest = Math.max(largest, largestKey(r.kvs));
        from = r.more && r.kvs.length > 0 ? after(lastKey(r.kvs)) : undefined;
        const wake = this.wake;
        this.progress = this.nextProgress();
        wake();
      }
    } catch {
      // See the class comment.
    } finally {
      this.done = true;
      this.wake();
    }
  }
}
