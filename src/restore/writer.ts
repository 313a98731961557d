import { showKey } from '../archive/keys';
import { CancelledError, EtcdError, ShieldError } from '../errors';
import type { Connection } from '../etcd/connect';
import { isTooLarge } from '../etcd/classify';
import { explainEtcdError } from '../etcd/explain';
import { countPuts, opKey, TxnEncoder } from '../etcd/txn-codec';
import { kvUnary } from '../etcd/unary';
import { BufferPool } from '../io/buffer-pool';
import type { BatchLimits } from './limits';

export interface WriterStats {
  puts: number;
  deletes: number;
  transactions: number;
  /** Most transactions ever in flight together (never above the limit). */
  peakInFlight: number;
}

/**
 * Groups puts and deletes into transactions within etcd's limits and keeps a
 * bounded number in flight. put() and delete() wait while the window is full,
 * which is the backpressure that keeps restore memory flat. Each transaction
 * is encoded into a pooled buffer as ops arrive, so the caller's key and value
 * buffers (views of archive chunks) are free at once, and nothing is built
 * per key. Every operation is a plain put or delete, so a retried
 * transaction is harmless.
 */
export class BatchWriter {
  private readonly pool: BufferPool;
  private batch: TxnEncoder;
  private readonly inFlight = new Set<Promise<void>>();
  private failure: ShieldError | undefined;
  readonly stats: WriterStats = { puts: 0, deletes: 0, transactions: 0, peakInFlight: 0 };

  constructor(
    private readonly conn: Connection,
    private readonly limits: BatchLimits,
    private readonly action: string,
    private readonly prefix: string,
    private readonly signal?: AbortSignal,
  ) {
    // One buffer per transaction in flight, and the one being filled.
    this.pool = new BufferPool(limits.concurrency + 1, limits.maxBytes);
    this.batch = new TxnEncoder(this.pool.take(limits.maxBytes));
  }

  /**
   * Adds a put. Returns a promise only when it has to wait (a transaction to
   * send first), which the caller must await before its next call: most calls
   * return nothing, so a restore makes no promise per key for the collector
   * (docs/performance.md, "Restore").
   */
  put(key: Uint8Array, value: Uint8Array, lease: string): Promise<void> | undefined {
    const wait = this.room(TxnEncoder.putSize(key, value, lease));
    if (wait) return wait.then(() => this.batch.put(key, value, lease));
    this.batch.put(key, value, lease);
    return undefined;
  }

  /** Adds a delete; waits only as put() does. */
  delete(key: Uint8Array): Promise<void> | undefined {
    const wait = this.room(TxnEncoder.deleteSize(key));
    if (wait) return wait.then(() => this.batch.delete(key));
    this.batch.delete(key);
    return undefined;
  }

  /** Sends the batch first if the next op would not fit it; a lone op larger than the budget gets a batch of its own size. */
  private room(bytes: number): Promise<void> | undefined {
    if (this.failure) return Promise.reject(this.failure);
    if (this.signal?.aborted) return Promise.reject(new CancelledError('stopped by a signal'));
    const b = this.batch;
    if (b.ops >= this.limits.maxOps || (b.ops > 0 && b.length + bytes > this.limits.maxBytes)) return this.dispatch().then(() => this.fit(bytes));
    this.fit(bytes);
    return undefined;
  }

  private fit(bytes: number): void {
    if (this.batch.buf.length < this.batch.length + bytes) {
      this.pool.give(this.batch.buf);
      this.batch = new TxnEncoder(this.pool.take(bytes));
    }
  }

  private async dispatch(): Promise<void> {
    const txn = this.batch;
    this.batch = new TxnEncoder(this.pool.take(this.limits.maxBytes));
    while (this.inFlight.size >= this.limits.concurrency) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure;
    const p: Promise<void> = this.send(txn.bytes, txn.starts)
      .catch((err: unknown) => {
        this.failure ??= err instanceof ShieldError ? err : explainEtcdError(err, this.context());
      })
      .finally(() => {
        this.inFlight.delete(p);
        // gRPC is done with the request once the call has ended.
        this.pool.give(txn.buf);
      });
    this.inFlight.add(p);
    this.stats.peakInFlight = Math.max(this.stats.peakInFlight, this.inFlight.size);
  }

  private context() {
    return { config: this.conn.config, action: this.action, prefix: this.prefix };
  }

  /**
   * Sends the ops of `txn` that begin at `starts`; a transaction etcd finds
   * too large is split in two, down to a single op, which then fails naming its key.
   */
  private async send(txn: Buffer, starts: number[]): Promise<void> {
    // etcd3 logs in again when its own call meets an expired token; an empty transaction needs no permission.
    const renew = () => this.conn.client.kv.txn({ compare: [], success: [], failure: [] });
    try {
      await kvUnary(this.conn, 'Txn', txn, renew);
    } catch (err) {
      if (!isTooLarge(err)) throw err;
      if (starts.length === 1) {
        throw new EtcdError(
          `etcd refused key ${showKey(opKey(txn, 0))} (${txn.length} bytes): larger than its --max-request-bytes`,
          'raise --max-request-bytes on every etcd member, then run the restore again',
          { cause: err },
        );
      }
      const half = starts.length >> 1;
      const cut = starts[half]!;
      await this.send(txn.subarray(0, cut), starts.slice(0, half));
      await this.send(
        txn.subarray(cut),
        starts.slice(half).map((s) => s - cut),
      );
      return;
    }
    const puts = countPuts(txn, starts);
    this.stats.transactions++;
    this.stats.puts += puts;
    this.stats.deletes += starts.length - puts;
  }

  /** Sends what is queued and waits for every transaction; throws the first failure. */
  async flush(): Promise<void> {
    if (this.batch.ops > 0 && !this.failure) await this.dispatch().catch(() => undefined);
    while (this.inFlight.size > 0) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure;
  }

  /** Lets in-flight transactions finish without sending anything more. */
  async settle(): Promise<void> {
    this.batch = new TxnEncoder(this.batch.buf);
    while (this.inFlight.size > 0) await Promise.race(this.inFlight);
  }
}
