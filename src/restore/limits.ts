export interface BatchLimits {
  /** etcd refuses transactions of more than 128 operations (--max-txn-ops). */
  maxOps: number;
  /** Kept under etcd's default 1.5 MiB --max-request-bytes; counted as encoded. */
  maxBytes: number;
  /** Transactions in flight at once. */
  concurrency: number;
}

export const DEFAULT_LIMITS: BatchLimits = { maxOps: 128, maxBytes: 1024 * 1024, concurrency: 8 };
