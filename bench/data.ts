// The benchmark's dataset: N keys with values of 200–2,000 random bytes, the
// same bytes for a given seed on every run and in every process (the seeder,
// the bare loader), and a few keys attached to leases.
import { createCipheriv, createHash } from 'node:crypto';

export const MIN_VALUE = 200;
export const MAX_VALUE = 2000;
/** One key in LEASE_EVERY is attached to one of LEASE_COUNT leases. */
export const LEASE_EVERY = 64;
export const LEASE_COUNT = 16;
/** A day: no lease expires during a benchmark. */
export const LEASE_TTL = 86_400;
const LEASE_ID_BASE = 0x5e1d_0000;
const POOL_BYTES = 8 * 1024 * 1024;

export interface DatasetSpec {
  keys: number;
  seed: number;
}

export interface Item {
  key: Buffer;
  value: Buffer;
  /** "0" for no lease. */
  lease: string;
}

/** 32-bit integer hash (lowbias32); good enough to spread lengths and offsets. */
function mix(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

export function leaseIds(): string[] {
  return Array.from({ length: LEASE_COUNT }, (_, j) => String(LEASE_ID_BASE + j));
}

export class Dataset {
  private readonly pool: Buffer;
  private readonly leases = leaseIds();

  constructor(readonly spec: DatasetSpec) {
    // AES-CTR over zeros, keyed by the seed: 8 MiB of random-looking bytes, the same every time.
    const key = createHash('sha256').update(`etcd-shield-bench:${spec.seed}`).digest();
    const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
    this.pool = Buffer.concat([cipher.update(Buffer.alloc(POOL_BYTES)), cipher.final()]);
  }

  /** Kubernetes-like keys, ~37 bytes, not loaded in key order. */
  key(i: number): Buffer {
    return Buffer.from(`/registry/bench/ns-${String(i % 64).padStart(2, '0')}/obj-${String(i).padStart(8, '0')}`);
  }

  valueLength(i: number): number {
    return MIN_VALUE + (mix(i ^ Math.imul(this.spec.seed, 0x9e3779b9)) % (MAX_VALUE - MIN_VALUE + 1));
  }

  item(i: number): Item {
    const len = this.valueLength(i);
    const at = mix((i + 0x632be5ab) ^ this.spec.seed) % (POOL_BYTES - MAX_VALUE);
    const lease = i % LEASE_EVERY === 0 ? this.leases[(i / LEASE_EVERY) % LEASE_COUNT]! : '0';
    return { key: this.key(i), value: this.pool.subarray(at, at + len), lease };
  }

  /** Bytes of keys plus values: the "MB" in MB/s, the same for every tool. */
  bytes(): number {
    let n = 0;
    for (let i = 0; i < this.spec.keys; i++) n += this.key(i).length + this.valueLength(i);
    return n;
  }

  leasedKeys(): number {
    return Math.ceil(this.spec.keys / LEASE_EVERY);
  }

  usedLeases(): string[] {
    return this.leases.slice(0, Math.min(LEASE_COUNT, this.leasedKeys()));
  }
}
