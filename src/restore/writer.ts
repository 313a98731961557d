import type { IRequestOp } from 'etcd3';
import { showKey } from '../archive/keys';
import { CancelledError, EtcdError, ShieldError } from '../errors';
import type { Connection } from '../etcd/connect';
import { explainEtcdError } from '../etcd/explain';

export interface BatchLimits {
  /** etcd refuses transactions of more than 128 operations (--max-txn-ops). */
  maxOps: number;
  /** Kept under etcd's default 1.5 MiB --max-request-bytes. */
  maxBytes: number;
  /** Transactions in flight at once. */
  concurrency: number;
}

export const DEFAULT_LIMITS: BatchLimits = { maxOps: 128, maxBytes: 1024 * 1024, concurrency: 8 };

// Per-operation framing inside a TxnRequest, so the byte budget holds on the wire.
const OP_OVERHEAD = 16;

interface Op {
  request: IRequestOp;
  key: Buffer;
  bytes: number;
}

export interface WriterStats {
  puts: number;
  deletes: number;
  transactions: number;
  /** Most transactions ever in flight together (never above the limit). */
  peakInFlight: number;
}

/**
 * Groups puts and deletes into transactions within etcd's limits and keeps a
 * bounded number in flight. add() waits while the window is full, which is
 * the backpressure that keeps restore memory flat. Every operation is a plain
 * put or delete, so a retried transaction is harmless.
 */
export class BatchWriter {
  private batch: Op[] = [];
  private batchBytes = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private failure: ShieldError | undefined;
  readonly stats: WriterStats = { puts: 0, deletes: 0, transactions: 0, peakInFlight: 0 };

  constructor(
    private readonly conn: Connection,
    private readonly limits: BatchLimits,
    private readonly action: string,
    private readonly prefix: string,
    private readonly signal?: AbortSignal,
  ) {}

  put(key: Buffer, value: Buffer, lease: string): Promise<void> {
    const request: IRequestOp = { request_put: lease === '0' ? { key, value } : { key, value, lease } };
    return this.add({ request, key, bytes: key.length + value.length + OP_OVERHEAD });
  }

  delete(key: Buffer): Promise<void> {
    return this.add({ request: { request_delete_range: { key } }, key, bytes: key.length + OP_OVERHEAD });
  }

  private async add(op: Op): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.signal?.aborted) throw new CancelledError('stopped by a signal');
    if (this.batch.length >= this.limits.maxOps || (this.batch.length > 0 && this.batchBytes + op.bytes > this.limits.maxBytes)) {
      await this.dispatch();
    }
    this.batch.push(op);
    this.batchBytes += op.bytes;
  }

  private async dispatch(): Promise<void> {
    const ops = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    while (this.inFlight.size >= this.limits.concurrency) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure;
    const p: Promise<void> = this.send(ops)
      .catch((err: unknown) => {
        this.failure ??= err instanceof ShieldError ? err : explainEtcdError(err, this.context());
      })
      .finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
    this.stats.peakInFlight = Math.max(this.stats.peakInFlight, this.inFlight.size);
  }

  private context() {
    return { config: this.conn.config, action: this.action, prefix: this.prefix };
  }

  /** Sends one transaction; one etcd finds too large is split in two. */
  private async send(ops: Op[]): Promise<void> {
    try {
      await this.conn.client.kv.txn({ compare: [], success: ops.map((o) => o.request), failure: [] });
    } catch (err) {
      // etcd answers "request is too large" up to --max-request-bytes, and its
      // gRPC layer RESOURCE_EXHAUSTED a little above that.
      if (!/request is too large|larger than max/.test(String((err as Error)?.message))) throw err;
      if (ops.length === 1) {
        throw new EtcdError(
          `etcd refused key ${showKey(ops[0]!.key)} (${ops[0]!.bytes} bytes): larger than its --max-request-bytes`,
          'raise --max-request-bytes on every etcd member, then run the restore again',
          { cause: err },
        );
      }
      const half = Math.ceil(ops.length / 2);
      await this.send(ops.slice(0, half));
      await this.send(ops.slice(half));
      return;
    }
    this.stats.transactions++;
    for (const o of ops) {
      if (o.request.request_put) this.stats.puts++;
      else this.stats.deletes++;
    }
  }

  /** Sends what is queued and waits for every transaction; throws the first failure. */
  async flush(): Promise<void> {
    if (this.batch.length > 0 && !this.failure) await this.dispatch().catch(() => undefined);
    while (this.inFlight.size > 0) await Promise.race(this.inFlight);
    if (this.failure) throw this.failure;
  }

  /** Lets in-flight transactions finish without sending anything more. */
  async settle(): Promise<void> {
    this.batch = [];
    while (this.inFlight.size > 0) await Promise.race(this.inFlight);
  }
}
