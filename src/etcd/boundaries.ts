/**
 * etcd 3.4 walks its index from a request's start key to its range_end on
 * every request, whatever the limit: paging with an open range_end costs
 * etcd the square of the page count. So each request gets a range_end
 * guessed about one page ahead, from how densely the keys of the last reply
 * lay. A guess only costs time, never keys: a page that ends early is
 * followed by one from its range_end, and one that fills up is continued
 * from its last key (docs/performance.md).
 */

const ZERO = Buffer.from([0]);
export const after = (key: Buffer) => Buffer.concat([key, ZERO]);

/**
 * Where keys differ, counting starts this many bytes earlier, so that a
 * guess can carry into them (`obj-0999` is followed by `obj-1000`).
 */
const HEADROOM = 4;

/** The keys of one reply, in order. */
export interface Keys {
  readonly length: number;
  key(i: number): Buffer;
}

/** An empty stretch makes the next guess this much wider, so a gap of any size takes few requests to cross. */
const EMPTY_GROWTH = 16;

/**
 * Places keys on a number line to measure and extend a stretch of them.
 * Bytes count as digits of an alphabet made of the bytes seen so far where
 * keys differ: keys like `obj-00012345` then step through ten digits, not
 * 256, and a guess lands on keys that can exist.
 */
export class KeyDensity {
  private readonly seen = new Uint8Array(256);
  private symbols: number[] = [];
  private dirty = false;
  /** The last stretch: `keys` keys (intervals) between from and to. */
  private last?: { from: Buffer; to: Buffer; keys: number };
  /** Empty replies in a row. */
  private empties = 0;
  private lastFull = false;

  /**
   * Records a reply to [start, end): when it filled up, its keys lay between
   * its first and last key; when it did not, the whole span held them.
   */
  observe(start: Buffer, end: Buffer, kvs: Keys, full: boolean): void {
    const n = kvs.length;
    if (n >= 2) {
      const first = kvs.key(0);
      const base = Math.max(0, sharedPrefix(first, kvs.key(n - 1)) - HEADROOM);
      for (let i = 0; i < n; i++) this.learn(kvs.key(i), base);
    }
    this.empties = n === 0 ? this.empties + 1 : 0;
    this.lastFull = full;
    if (!full) this.last = { from: start, to: end, keys: n };
    else if (n >= 2) this.last = { from: kvs.key(0), to: kvs.key(n - 1), keys: n - 1 };
    else this.last = { from: start, to: kvs.key(n - 1), keys: n };
  }

  /**
   * A range_end for a request from start that should hold about `want` of
   * the span's keys, strictly inside the span, or undefined to ask for all
   * of it. `keys`, when known, is how many keys the span holds ("\0": the
   * end of the keyspace).
   */
  guessEnd(start: Buffer, end: Buffer, want: number, keys?: number): Buffer | undefined {
    const open = end.length === 1 && end[0] === 0;
    if (keys !== undefined && keys <= want) return undefined;
    // Right after a full page, its density is the best guide. After a page
    // that ran out (a gap between groups of keys, most likely), the span's
    // count is, if known.
    const guess =
      this.lastFull || keys === undefined || open
        ? this.beyond(start, want)
        : // One empty reply is no news here (a count says nothing of where keys lie); more in a row are.
          this.between(start, end, (want / keys) * (this.empties > 1 ? this.growth() : 1));
    if (!guess || Buffer.compare(guess, start) <= 0) return undefined;
    return open || Buffer.compare(guess, end) < 0 ? guess : undefined;
  }

  /** A fraction of the way from start to end: the span's count is known, so no guess about density is needed. */
  private between(start: Buffer, end: Buffer, fraction: number): Buffer | undefined {
    const base = sharedPrefix(start, end);
    const line = this.line(base, start, end);
    const from = line.place(start, base);
    const to = line.place(end, base);
    if (to <= from) return undefined;
    return line.key(start.subarray(0, base), from + Math.max(1, Math.ceil((to - from) * fraction)));
  }

  /** About `want` keys past start, at the density of the last reply. */
  private beyond(start: Buffer, want: number): Buffer | undefined {
    const last = this.last;
    if (!last) return undefined;
    const base = Math.max(0, sharedPrefix(last.from, last.to) - HEADROOM);
    if (sharedPrefix(start, last.to) < base) return undefined;
    const line = this.line(base, last.from, last.to, start);
    const span = line.place(last.to, base) - line.place(last.from, base);
    if (span <= 0) return undefined;
    const width = Math.ceil(last.keys > 0 ? (span * want) / last.keys : span * this.growth());
    const at = line.place(start, base) + Math.max(1, width);
    return at >= line.size ? pastPrefix(start.subarray(0, base)) : line.key(start.subarray(0, base), at);
  }

  /** Past empty stretches, the next is wider at a growing rate: a gap of any size takes a few requests. */
  private growth(): number {
    return this.empties === 0 ? 1 : EMPTY_GROWTH ** (2 ** Math.min(4, this.empties - 1));
  }

  private learn(key: Buffer, from: number, to = key.length): void {
    for (let i = from; i < to; i++) {
      if (!this.seen[key[i]!]) {
        this.seen[key[i]!] = 1;
        this.dirty = true;
      }
    }
  }

  /** The number line for these keys from byte `base` on; their every byte there must be a digit, or a guess would not be built from them. */
  private line(base: number, ...keys: Buffer[]): NumberLine {
    // Not the NUL that after() appends: as a digit it would turn up inside guesses.
    for (const key of keys) this.learn(key, base, key[key.length - 1] === 0 ? key.length - 1 : key.length);
    if (this.dirty || this.symbols.length === 0) {
      this.symbols = [];
      for (let b = 0; b < 256; b++) if (this.seen[b]) this.symbols.push(b);
      // Too few to count in: every byte.
      if (this.symbols.length < 2) this.symbols = Array.from({ length: 256 }, (_, b) => b);
      this.dirty = false;
    }
    return new NumberLine(this.symbols);
  }
}

/**
 * Keys as numbers of `digits` digits, digit d standing for symbols[d]. A
 * byte between symbols takes the digit of the symbol below it, and a key
 * shorter than the digits is filled with the lowest symbol, so the order of
 * keys is kept (ties aside). As many digits as a double holds exactly.
 */
class NumberLine {
  private readonly radix: number;
  private readonly digits: number;
  readonly size: number;
  private readonly digitOf = new Uint8Array(256);

  constructor(private readonly symbols: number[]) {
    this.radix = symbols.length;
    this.digits = Math.floor(53 / Math.log2(this.radix));
    this.size = this.radix ** this.digits;
    let d = 0;
    for (let b = 0; b < 256; b++) {
      while (d + 1 < symbols.length && symbols[d + 1]! <= b) d++;
      this.digitOf[b] = d;
    }
  }

  place(key: Buffer, from: number): number {
    let v = 0;
    for (let i = 0; i < this.digits; i++) {
      const at = from + i;
      v = v * this.radix + (at < key.length ? this.digitOf[key[at]!]! : 0);
    }
    return v;
  }

  /** The key at a place, after prefix, without the filling at its end. */
  key(prefix: Buffer, at: number): Buffer {
    const out = Buffer.alloc(prefix.length + this.digits);
    prefix.copy(out);
    let v = Math.floor(at);
    let length = prefix.length;
    for (let i = this.digits - 1; i >= 0; i--) {
      const d = v % this.radix;
      v = Math.floor(v / this.radix);
      out[prefix.length + i] = this.symbols[d]!;
      if (d !== 0 && length === prefix.length) length = prefix.length + i + 1;
    }
    return out.subarray(0, length);
  }
}

function sharedPrefix(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** The smallest key above every key that starts with prefix, or undefined past the end of the keyspace. */
function pastPrefix(prefix: Buffer): Buffer | undefined {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i]! < 0xff) {
      const end = Buffer.from(prefix.subarray(0, i + 1));
      end[i]!++;
      return end;
    }
  }
  return undefined;
}
