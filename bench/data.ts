// The benchmark's datasets: N keys in one of several layouts, the same bytes
// for a given seed on every run and in every process (the seeder, the bare
// loader), and a few keys attached to leases.
//
//   bench  /registry/bench/ns-07/obj-00000007: 64 directories of the same
//          size, zero-padded ids, values of 200–2,000 random bytes
//   k8s    /registry/<kind>/<namespace>/<name>: a dozen resource kinds (some
//          cluster-scoped), namespaces from a few keys to a quarter of all,
//          unpadded ids, value sizes by kind
//   uuid   /registry/things/<random uuid>, values of 200–2,000 bytes
//   large  the bench keys; one value in LARGE_EVERY (about) has 2–6 MiB,
//          more than etcd's default request limit (see LAYOUT_ETCD_ARGS)
import { createCipheriv, createHash } from 'node:crypto';

export const MIN_VALUE = 200;
export const MAX_VALUE = 2000;
/** One key in LEASE_EVERY is attached to one of LEASE_COUNT leases. */
export const LEASE_EVERY = 64;
export const LEASE_COUNT = 16;
/** A day: no lease expires during a benchmark. */
export const LEASE_TTL = 86_400;
const LEASE_ID_BASE = 0x5e1d_0000;
const MiB = 1024 * 1024;
const POOL_BYTES = 8 * MiB;

export const LAYOUTS = ['bench', 'k8s', 'uuid', 'large'] as const;
export type Layout = (typeof LAYOUTS)[number];

/** `large`: about one value in LARGE_EVERY is LARGE_MIN–LARGE_MAX bytes. */
export const LARGE_EVERY = 8192;
const LARGE_MIN = 2 * MiB;
const LARGE_MAX = 6 * MiB;

/**
 * etcd flags a layout needs: etcd 3.4 refuses a request above
 * --max-request-bytes (1.5 MiB by default), and a transaction of the
 * loader's may carry a 6 MiB value among its 127 small ones.
 */
export const LAYOUT_ETCD_ARGS: Record<Layout, string[]> = {
  bench: [],
  k8s: [],
  uuid: [],
  large: [`--max-request-bytes=${8 * MiB}`],
};

export interface DatasetSpec {
  keys: number;
  seed: number;
  /** Default: bench. */
  layout?: Layout;
}

export interface Item {
  key: Buffer;
  value: Buffer;
  /** "0" for no lease. */
  lease: string;
}

/** 32-bit integer hash (lowbias32, a bijection); good enough to spread lengths and offsets. */
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

export function parseLayout(name: string): Layout {
  if (!(LAYOUTS as readonly string[]).includes(name)) throw new Error(`unknown layout ${JSON.stringify(name)} (one of ${LAYOUTS.join(', ')})`);
  return name as Layout;
}

// k8s: resource kinds with their share of the keys and their value sizes.
interface Kind {
  path: string;
  weight: number;
  min: number;
  max: number;
  namespaced: boolean;
  /** How names are made from the object's app and id. */
  name: (app: string, id: number, h: number) => string;
}

const hex = (n: number, digits: number) => n.toString(16).padStart(8, '0').slice(-digits);
const plain = (app: string, id: number) => `${app}-${id}`;
const KINDS: Kind[] = [
  { path: 'events', weight: 28, min: 300, max: 900, namespaced: true, name: (app, id, h) => `${app}-${id}.${hex(h, 8)}${hex(mix(h), 8)}` },
  { path: 'pods', weight: 20, min: 1500, max: 4000, namespaced: true, name: (app, id, h) => `${app}-${hex(h, 8)}${hex(mix(h), 2)}-${id}` },
  { path: 'replicasets', weight: 8, min: 800, max: 2500, namespaced: true, name: (app, id, h) => `${app}-${hex(h, 9)}-${id}` },
  { path: 'configmaps', weight: 8, min: 200, max: 6000, namespaced: true, name: plain },
  { path: 'secrets', weight: 8, min: 200, max: 2000, namespaced: true, name: plain },
  { path: 'endpointslices', weight: 6, min: 300, max: 1200, namespaced: true, name: (app, id, h) => `${app}-${id}-${hex(h, 5)}` },
  { path: 'services/specs', weight: 4, min: 400, max: 1000, namespaced: true, name: plain },
  { path: 'deployments', weight: 4, min: 1000, max: 3000, namespaced: true, name: plain },
  { path: 'serviceaccounts', weight: 4, min: 200, max: 400, namespaced: true, name: plain },
  { path: 'leases', weight: 2, min: 250, max: 350, namespaced: true, name: plain },
  { path: 'minions', weight: 2, min: 3000, max: 6000, namespaced: false, name: (_app, id) => `node-${id}` },
  { path: 'clusterrolebindings', weight: 2, min: 300, max: 800, namespaced: false, name: plain },
  { path: 'apiextensions.k8s.io/customresourcedefinitions', weight: 1, min: 5000, max: 20000, namespaced: false, name: (app, id) => `${app}${id}.example.com` },
];
const KIND_TOTAL = KINDS.reduce((n, k) => n + k.weight, 0);
const APPS = ['api', 'web', 'worker', 'db', 'cache', 'ingress', 'metrics', 'auth', 'billing', 'search'];
const NAMED_NAMESPACES = ['kube-system', 'default', 'monitoring', 'ingress-nginx', 'cert-manager', 'kube-node-lease'];
/** Namespaces, sized like a Zipf distribution (the first about 40 times the last). */
const NAMESPACES = [...NAMED_NAMESPACES, ...Array.from({ length: 34 }, (_, j) => `tenant-${j + 1}`)];
const NS_CUMULATIVE = (() => {
  const w = NAMESPACES.map((_, j) => 1 / (j + 1));
  const total = w.reduce((a, b) => a + b, 0);
  let run = 0;
  return w.map((x) => (run += x / total));
})();

export class Dataset {
  private readonly pool: Buffer;
  private readonly leases = leaseIds();
  readonly layout: Layout;
  private readonly salt: number;

  constructor(readonly spec: DatasetSpec) {
    this.layout = spec.layout ?? 'bench';
    this.salt = Math.imul(spec.seed, 0x9e3779b9);
    // AES-CTR over zeros, keyed by the seed: 8 MiB of random-looking bytes, the same every time.
    const key = createHash('sha256').update(`etcd-shield-bench:${spec.seed}`).digest();
    const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
    this.pool = Buffer.concat([cipher.update(Buffer.alloc(POOL_BYTES)), cipher.final()]);
  }

  /** A hash of i for one purpose (`what`), the same for a seed. */
  private h(i: number, what: number): number {
    return mix(mix(i ^ this.salt) + Math.imul(what, 0x632be5ab));
  }

  private kind(i: number): Kind {
    let pick = this.h(i, 1) % KIND_TOTAL;
    for (const k of KINDS) if ((pick -= k.weight) < 0) return k;
    return KINDS[0]!;
  }

  private namespace(i: number): string {
    const u = this.h(i, 2) / 2 ** 32;
    const j = NS_CUMULATIVE.findIndex((c) => u < c);
    return NAMESPACES[j < 0 ? NAMESPACES.length - 1 : j]!;
  }

  /** Keys are not loaded in key order in any layout. */
  key(i: number): Buffer {
    switch (this.layout) {
      case 'k8s': {
        const kind = this.kind(i);
        const name = kind.name(APPS[this.h(i, 3) % APPS.length]!, i, this.h(i, 4));
        return Buffer.from(kind.namespaced ? `/registry/${kind.path}/${this.namespace(i)}/${name}` : `/registry/${kind.path}/${name}`);
      }
      case 'uuid': {
        // The first group is a bijection of i, so keys are distinct; the version and variant bits are set as in v4.
        const a = mix(i ^ this.salt);
        const b = this.h(i, 5);
        const c = this.h(i, 6);
        const d = this.h(i, 7);
        const v = `${hex(a, 8)}-${hex(b >>> 16, 4)}-4${hex(b & 0xfff, 3)}-${hex(0x8000 | (c & 0x3fff), 4)}-${hex(c >>> 16, 4)}${hex(d, 8)}`;
        return Buffer.from(`/registry/things/${v}`);
      }
      default:
        return Buffer.from(`/registry/bench/ns-${String(i % 64).padStart(2, '0')}/obj-${String(i).padStart(8, '0')}`);
    }
  }

  /** Whether item i is one of the `large` layout's big values. */
  isLarge(i: number): boolean {
    return this.layout === 'large' && this.h(i, 8) % LARGE_EVERY === 0;
  }

  valueLength(i: number): number {
    if (this.layout === 'k8s') {
      const k = this.kind(i);
      return k.min + (this.h(i, 9) % (k.max - k.min + 1));
    }
    if (this.isLarge(i)) return LARGE_MIN + (this.h(i, 9) % (LARGE_MAX - LARGE_MIN + 1));
    return MIN_VALUE + (mix(i ^ this.salt) % (MAX_VALUE - MIN_VALUE + 1));
  }

  item(i: number): Item {
    const len = this.valueLength(i);
    const at = mix((i + 0x632be5ab) ^ this.spec.seed) % (POOL_BYTES - Math.max(len, MAX_VALUE));
    const lease = i % LEASE_EVERY === 0 ? this.leases[(i / LEASE_EVERY) % LEASE_COUNT]! : '0';
    return { key: this.key(i), value: this.pool.subarray(at, at + len), lease };
  }

  /** Bytes of keys plus values: the "MB" in MB/s, the same for every tool. */
  bytes(): number {
    let n = 0;
    for (let i = 0; i < this.spec.keys; i++) n += this.key(i).length + this.valueLength(i);
    return n;
  }

  /** Items that restore's check compares byte for byte: a few fixed ones, and every large value. */
  samples(): number[] {
    const n = this.spec.keys;
    const out = new Set([0, 1, 63, 64, Math.floor(n / 2), n - 1].filter((i) => i < n));
    if (this.layout === 'large') for (let i = 0; i < n; i++) if (this.isLarge(i)) out.add(i);
    return [...out];
  }

  leasedKeys(): number {
    return Math.ceil(this.spec.keys / LEASE_EVERY);
  }

  usedLeases(): string[] {
    return this.leases.slice(0, Math.min(LEASE_COUNT, this.leasedKeys()));
  }
}
