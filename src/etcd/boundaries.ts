/**
 * etcd 3.4 walks its index from a request's start key to its range_end on
 * every request, whatever the limit: paging with an open range_end costs
 * etcd the square of the page count. So each request gets a range_end
 * guessed about one page ahead: from how densely the keys of the last reply
 * lay, or, past a gap, from the count etcd gave for the span. A guess only
 * costs time, never keys: a page that ends early is followed by one from its
 * range_end, and one that fills up is continued from its last key
 * (docs/performance.md).
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

/** How far past a gap a guess may reach, in pages' worth of the span's keys spread evenly. */
const MAX_OVERSHOOT = 8;

/** An empty stretch makes the next guess this much wider, so a gap of any size takes few requests to cross. */
const EMPTY_GROWTH = 16;

/** A reply that holds this share of what its guess aimed at shows the guesses hold: its density guides the next. */
const ON_TRACK_SHARE = 0.5;

/**
 * Interpolating by a span's count, the first empty reply in a row is no
 * news (the count already spreads keys over gaps); widening starts after it.
 */
const COUNTED_EMPTIES_IGNORED = 1;

/** Growth past empty stretches doubles its exponent at most this many times (EMPTY_GROWTH ** 16 at most). */
const MAX_GROWTH_DOUBLINGS = 4;

/** Keys of a reply learnt from: about this many, evenly spread, and its last. */
const LEARN_SAMPLE = 128;

const BYTE_VALUES = 256;

/** Kinds of byte, as bits. */
const DIGIT = 1;
const LOWER = 2;
const UPPER = 4;
const OTHER = 8;
const inRange = (b: number, lo: string, hi: string) => b >= lo.charCodeAt(0) && b <= hi.charCodeAt(0);
const KIND_BIT = Uint8Array.from({ length: BYTE_VALUES }, (_, b) =>
  inRange(b, '0', '9') ? DIGIT : inRange(b, 'a', 'z') ? LOWER : inRange(b, 'A', 'Z') ? UPPER : OTHER,
);

/** Key positions with an alphabet of their own; those past it share the last. */
const POSITIONS = 256;

/** A number line spans at most this many key positions... */
const LINE_POSITIONS = 64;
/** ...and no more places than a double counts exactly. */
const EXACT_DOUBLE = 2 ** 53;

/**
 * Places keys on a number line to measure and extend a stretch of them.
 * Each byte position counts in the bytes seen there so far (see line()): in
 * keys like `obj-00012345` the last eight positions count in ten digits, not
 * 256, so a guess lands where keys can be, and 00099999 is followed by
 * 00100000.
 */
export class KeyDensity {
  /** seen[position * BYTE_VALUES + byte]. */
  private readonly seen = new Uint8Array((POSITIONS + 1) * BYTE_VALUES);
  /** Per position, the digits it counts in (see line()); recomputed when a key brings news. */
  private alphabets?: number[][];
  /** The longest key learnt. */
  private longest = 0;
  /** The last stretch: `keys` keys (intervals) between from and to. */
  private last?: { from: Buffer; to: Buffer; keys: number };
  /** Empty replies in a row. */
  private empties = 0;
  /** Guesses made past an empty reply since the last reply: each is planned as if those before it came back empty too. */
  private blind = 0;
  /** Whether the last reply held about what was asked for: its density is then the best guide. */
  private onTrack = false;

  /**
   * Records a reply to [start, end): when it filled up, its keys lay between
   * its first and last key; when it did not, the whole span held them.
   * `wanted` is what the guess that ended the span aimed at, if one did.
   */
  observe(start: Buffer, end: Buffer, kvs: Keys, full: boolean, wanted?: number): void {
    const n = kvs.length;
    // A sample of the keys shows the alphabets well enough.
    const step = Math.max(1, Math.floor(n / LEARN_SAMPLE));
    for (let i = 0; i < n; i += step) this.learn(kvs.key(i));
    if (n > 0) this.learn(kvs.key(n - 1));
    this.empties = n === 0 ? this.empties + 1 : 0;
    this.blind = 0;
    this.onTrack = full || (wanted !== undefined && n >= wanted * ON_TRACK_SHARE);
    // Copies of keys: a view would keep the whole reply alive until the next one.
    if (!full) this.last = { from: start, to: end, keys: n };
    else if (n >= 2) this.last = { from: Buffer.from(kvs.key(0)), to: Buffer.from(kvs.key(n - 1)), keys: n - 1 };
    else this.last = { from: start, to: Buffer.from(kvs.key(n - 1)), keys: n };
  }

  /**
   * A range_end for a request from start that should hold about `want` of
   * the span's keys, strictly inside the span, or undefined to ask for all
   * of it. `keys`, when known, is about how many keys the span holds
   * ("\0": the end of the keyspace).
   */
  guessEnd(start: Buffer, end: Buffer, want: number, keys?: number): Buffer | undefined {
    const open = end.length === 1 && end[0] === 0;
    // While guesses hold about what they aim at, the last page's density is
    // the best guide. After a page that ran out early (a gap between groups
    // of keys, most likely), the span's count is, if known.
    const counted = keys !== undefined && keys > want && !open;
    let guess = !this.onTrack && counted ? this.between(start, end, (want / keys) * this.growth(COUNTED_EMPTIES_IGNORED)) : this.beyond(start, want);
    // A guess past a gap can overshoot into many keys, and etcd walks them
    // all: no further than MAX_OVERSHOOT pages would reach if the span's
    // keys were spread evenly.
    const cap = counted ? this.between(start, end, Math.min(1, (MAX_OVERSHOOT * want) / keys)) : undefined;
    if (guess && cap && Buffer.compare(cap, guess) < 0) guess = cap;
    if (!guess || Buffer.compare(guess, start) <= 0) return undefined;
    return open || Buffer.compare(guess, end) < 0 ? guess : undefined;
  }

  /** A fraction of the way from start to end, as if the span's keys were spread evenly. */
  private between(start: Buffer, end: Buffer, fraction: number): Buffer | undefined {
    const base = sharedPrefix(start, end);
    // The bounds' own bytes count here too (a prefix's end, say), without joining what is learnt.
    const bounds = [start, end].map((key) => (key[key.length - 1] === 0 ? key.subarray(0, -1) : key));
    const line = this.line(base, bounds);
    const from = line.place(start);
    const to = line.place(end);
    if (to <= from) return undefined;
    return line.key(start.subarray(0, base), from + Math.max(1, Math.ceil((to - from) * fraction)));
  }

  /** About `want` keys past start, at the density of the last reply. */
  private beyond(start: Buffer, want: number): Buffer | undefined {
    const last = this.last;
    if (!last) return undefined;
    // Counting from where start, too, shares the stretch's prefix: past a gap, start may be further out.
    const base = Math.max(0, Math.min(sharedPrefix(last.from, last.to), sharedPrefix(start, last.to)) - HEADROOM);
    const line = this.line(base);
    const span = line.place(last.to) - line.place(last.from);
    if (span <= 0) return undefined;
    const width = Math.ceil(last.keys > 0 ? (span * want) / last.keys : span * this.growth());
    const at = line.place(start) + Math.max(1, width);
    return at >= line.size ? pastPrefix(start.subarray(0, base)) : line.key(start.subarray(0, base), at);
  }

  /**
   * Past empty stretches, the next is wider at a growing rate: a gap of any
   * size takes a few requests. `ignore` empties in a row are no news yet.
   */
  private growth(ignore = 0): number {
    if (this.empties <= ignore) return 1;
    return EMPTY_GROWTH ** (2 ** Math.min(MAX_GROWTH_DOUBLINGS, this.empties - 1 - ignore + this.blind++));
  }

  /** Only keys etcd returned: guesses are built from what was learnt, and must not feed it. */
  private learn(key: Buffer): void {
    for (let i = 0; i < key.length; i++) {
      const at = Math.min(i, POSITIONS) * BYTE_VALUES + key[i]!;
      if (!this.seen[at]) {
        this.seen[at] = 1;
        this.alphabets = undefined;
      }
    }
    if (key.length > this.longest) {
      this.longest = key.length;
      this.alphabets = undefined;
    }
  }

  /**
   * The number line from byte `base` on. A position that has not varied yet
   * (the 0 of 00012345) counts in the alphabet of those after it that have,
   * within its own kinds of byte (digits, letters...): each position's
   * alphabet is what was seen there, plus those bytes of its kinds seen
   * after it. So the 0 of ns-09/obj counts in digits, not in "obj".
   */
  private line(base: number, extra: readonly Buffer[] = []): NumberLine {
    if (!this.alphabets) {
      this.alphabets = [];
      let after = new Uint8Array(BYTE_VALUES);
      for (let p = this.longest - 1; p >= 0; p--) {
        const row = Math.min(p, POSITIONS) * BYTE_VALUES;
        let kinds = 0;
        for (let b = 0; b < BYTE_VALUES; b++) if (this.seen[row + b]) kinds |= KIND_BIT[b]!;
        const here = new Uint8Array(BYTE_VALUES);
        const symbols: number[] = [];
        for (let b = 0; b < BYTE_VALUES; b++) {
          if (this.seen[row + b] || (after[b] && kinds & KIND_BIT[b]!)) {
            here[b] = 1;
            symbols.push(b);
          }
        }
        this.alphabets[p] = symbols;
        after = here;
      }
    }
    return new NumberLine(this.alphabets, base, extra);
  }
}

/**
 * Keys as mixed-radix numbers from byte `base` on: position p has a digit
 * per byte seen there, as many positions as a double holds exactly. A byte
 * between those seen takes the digit of the one below it, and a key that
 * ends early is filled with the lowest, so the order of keys is kept (ties
 * aside).
 */
class NumberLine {
  private readonly symbols: number[][] = [];
  readonly size: number;

  /** `extra` keys' bytes count too (at their position and before), for this line only. */
  constructor(alphabets: readonly number[][], private readonly base: number, extra: readonly Buffer[]) {
    const fromExtra: number[][] = [];
    const running = new Set<number>();
    for (let p = Math.max(0, ...extra.map((k) => k.length)) - 1; p >= base; p--) {
      for (const key of extra) if (p < key.length) running.add(key[p]!);
      fromExtra[p - base] = [...running];
    }
    let size = 1;
    for (let p = base; p < base + LINE_POSITIONS; p++) {
      // Past the end of every key: only the filling.
      let symbols = alphabets[p] ?? [0];
      const more = fromExtra[p - base];
      if (more) symbols = [...new Set([...symbols, ...more])].sort((a, b) => a - b);
      if (size * symbols.length > EXACT_DOUBLE) break;
      size *= symbols.length;
      this.symbols.push(symbols);
    }
    this.size = size;
  }

  /** The digit of byte b at position i: that of the highest symbol not above it. */
  private digit(i: number, b: number): number {
    const symbols = this.symbols[i]!;
    let lo = 0;
    let hi = symbols.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (symbols[mid]! <= b) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  place(key: Buffer): number {
    let v = 0;
    for (let i = 0; i < this.symbols.length; i++) {
      const at = this.base + i;
      v = v * this.symbols[i]!.length + (at < key.length ? this.digit(i, key[at]!) : 0);
    }
    return v;
  }

  /** The key at a place, after the key's first `base` bytes, without the filling at its end. */
  key(prefix: Buffer, at: number): Buffer {
    const n = this.symbols.length;
    const out = Buffer.alloc(prefix.length + n);
    prefix.copy(out);
    let v = Math.floor(at);
    let length = prefix.length;
    for (let i = n - 1; i >= 0; i--) {
      const radix = this.symbols[i]!.length;
      const d = v % radix;
      v = Math.floor(v / radix);
      out[prefix.length + i] = this.symbols[i]![d]!;
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
export function pastPrefix(prefix: Buffer): Buffer | undefined {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if (prefix[i]! < 0xff) {
      const end = Buffer.from(prefix.subarray(0, i + 1));
      end[i]!++;
      return end;
    }
  }
  return undefined;
}
