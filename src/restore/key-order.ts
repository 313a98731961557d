import type { RecordRef } from '../archive/types';
import { doubled } from '../util/key-index';
import type { Put } from './source';

/** Key and value bytes gathered, then sorted and handed on. */
export const KEY_ORDER_WINDOW_BYTES = 4 * 1024 * 1024;
const FIRST_ENTRIES = 4096;
/** Records per onBatch call: what each call holds dies young. */
const HAND_ON = 64;

/**
 * Hands records on in key order, a window at a time. An etcd snapshot holds
 * its keys in revision order, and etcd spends more CPU on the same puts in
 * that order than in key order, the more so the more keys it holds
 * (docs/performance.md, "Reading snapshots"). Records are copied into one
 * buffer that serves every window; the reader's own buffers are reused.
 */
export class KeyOrderWindow {
  private readonly arena = Buffer.allocUnsafeSlow(KEY_ORDER_WINDOW_BYTES);
  private used = 0;
  /** Where each record's key starts, in the arena or (a record that did not fit) in a copy of its own. */
  private bufs: Buffer[] = [];
  private keyAt = new Int32Array(FIRST_ENTRIES);
  private keyLength = new Int32Array(FIRST_ENTRIES);
  private valueLength = new Int32Array(FIRST_ENTRIES);
  private leases: string[] = [];
  /** Records copied on their own: a large value, or the last of a window. */
  private own = 0;
  private count = 0;

  constructor(private readonly onBatch: (puts: Put[]) => Promise<void>) {}

  /** Holds a window's worth: time to flush(). */
  get full(): boolean {
    return this.used >= KEY_ORDER_WINDOW_BYTES || this.own > 0;
  }

  /** Copies the record, which is valid only during the call. */
  add(r: RecordRef): void {
    if (this.count === this.keyAt.length) {
      this.keyAt = doubled(this.keyAt);
      this.keyLength = doubled(this.keyLength);
      this.valueLength = doubled(this.valueLength);
    }
    const n = this.count++;
    this.leases.push(r.lease());
    this.keyLength[n] = r.keyLength;
    this.valueLength[n] = r.valueLength;
    if (this.used + r.keyLength + r.valueLength > this.arena.length) {
      const copy = Buffer.allocUnsafe(r.keyLength + r.valueLength);
      r.copyKeyValue(copy, 0);
      this.bufs.push(copy);
      this.keyAt[n] = 0;
      this.own++;
      return;
    }
    this.bufs.push(this.arena);
    this.keyAt[n] = this.used;
    this.used += r.copyKeyValue(this.arena, this.used);
  }

  /** Hands what it holds to onBatch in key order and waits for each call; the buffer is reused after. */
  async flush(): Promise<void> {
    if (this.count === 0) return;
    const { bufs, keyAt, keyLength, valueLength, leases } = this;
    // Compared byte by byte past what every key shares: no string or view per key, and no call into C++ per comparison.
    const skip = sharedPrefix(bufs, keyAt, keyLength, this.count);
    const order = Array.from({ length: this.count }, (_, n) => n).sort((a, b) => {
      const A = bufs[a]!;
      const B = bufs[b]!;
      let i = keyAt[a]! + skip;
      let j = keyAt[b]! + skip;
      const endA = keyAt[a]! + keyLength[a]!;
      const endB = keyAt[b]! + keyLength[b]!;
      for (; i < endA && j < endB; i++, j++) {
        if (A[i] !== B[j]) return A[i]! - B[j]!;
      }
      return endA - i - (endB - j);
    });
    for (let at = 0; at < order.length; at += HAND_ON) {
      const puts: Put[] = [];
      for (let o = at; o < Math.min(at + HAND_ON, order.length); o++) {
        const n = order[o]!;
        const keyEnd = keyAt[n]! + keyLength[n]!;
        puts.push({ key: bufs[n]!.subarray(keyAt[n]!, keyEnd), value: bufs[n]!.subarray(keyEnd, keyEnd + valueLength[n]!), lease: leases[n]! });
      }
      await this.onBatch(puts);
    }
    this.used = 0;
    this.count = 0;
    this.own = 0;
    this.leases = [];
    this.bufs = [];
  }
}

/** How many leading bytes the first `count` keys all share. */
function sharedPrefix(bufs: Buffer[], keyAt: Int32Array, keyLength: Int32Array, count: number): number {
  const first = bufs[0]!;
  const at = keyAt[0]!;
  let shared = keyLength[0]!;
  for (let n = 1; n < count && shared > 0; n++) {
    const buf = bufs[n]!;
    const from = keyAt[n]!;
    let k = 0;
    const most = Math.min(shared, keyLength[n]!);
    while (k < most && buf[from + k] === first[at + k]) k++;
    shared = k;
  }
  return shared;
}
