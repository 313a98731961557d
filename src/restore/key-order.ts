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
  private keyAt = new Int32Array(FIRST_ENTRIES);
  private keyLength = new Int32Array(FIRST_ENTRIES);
  private valueLength = new Int32Array(FIRST_ENTRIES);
  private leases: string[] = [];
  /** Records that did not fit in the buffer (a large value, the last of a window), copied on their own. */
  private readonly large = new Map<number, Put>();
  private count = 0;

  constructor(private readonly onBatch: (puts: Put[]) => Promise<void>) {}

  /** Holds a window's worth: time to flush(). */
  get full(): boolean {
    return this.used >= KEY_ORDER_WINDOW_BYTES || this.large.size > 0;
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
    if (this.used + r.keyLength + r.valueLength > this.arena.length) {
      this.large.set(n, { key: Buffer.from(r.key()), value: Buffer.from(r.value()), lease: this.leases[n]! });
      return;
    }
    this.keyAt[n] = this.used;
    this.keyLength[n] = r.keyLength;
    this.valueLength[n] = r.valueLength;
    this.used += r.key().copy(this.arena, this.used);
    this.used += r.value().copy(this.arena, this.used);
  }

  /** Hands what it holds to onBatch in key order and waits for each call; the buffer is reused after. */
  async flush(): Promise<void> {
    if (this.count === 0) return;
    const { arena, keyAt, keyLength, valueLength, large, leases } = this;
    const key = (n: number) => large.get(n)?.key ?? arena.subarray(keyAt[n]!, keyAt[n]! + keyLength[n]!);
    // latin1 strings compare as their bytes, far quicker than a Buffer.compare call each.
    const names = Array.from({ length: this.count }, (_, n) => key(n).toString('latin1'));
    const order = Array.from({ length: this.count }, (_, n) => n).sort((a, b) => (names[a]! < names[b]! ? -1 : names[a]! > names[b]! ? 1 : 0));
    names.length = 0;
    for (let at = 0; at < order.length; at += HAND_ON) {
      const puts: Put[] = [];
      for (let o = at; o < Math.min(at + HAND_ON, order.length); o++) {
        const n = order[o]!;
        const keyEnd = keyAt[n]! + keyLength[n]!;
        puts.push(large.get(n) ?? { key: arena.subarray(keyAt[n]!, keyEnd), value: arena.subarray(keyEnd, keyEnd + valueLength[n]!), lease: leases[n]! });
      }
      await this.onBatch(puts);
    }
    this.used = 0;
    this.count = 0;
    this.leases = [];
    large.clear();
  }
}
