// Experiment behind docs/performance.md, not part of `npm run bench`: how fast
// can a Node backup be if a Range reply is never turned into protobufjs
// objects? It uses etcd3's own connection (TLS, auth token, failover all
// stay etcd3's), asks for the raw reply bytes of each Range, and transcodes
// the KeyValues straight into etcd-shield archive frames: one copy, no
// per-key objects, no Long -> string -> BigInt. The output is a valid
// etcd-shield archive (`etcd-shield verify` accepts it).
//
//   node dist/bench/raw-backup.js --endpoints URL --out FILE [--page-bytes N] [--bounded [--stride 1000]]
//
// --bounded: etcd 3.4 walks its index from a Range's start key to its
// range_end for every request, however small the limit, so paging through N
// keys costs O(N^2 / page) in etcd. With --bounded, one keys-only pass (big
// pages, raw bytes) keeps every stride-th key; each data page then asks for
// [after last key, a boundary a page or so further), so etcd walks about one
// page per request. The boundaries come from the same pinned revision.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import type { Client, Metadata } from '@grpc/grpc-js';
import { boundaryAfter } from '../src/etcd/pages';
import { client } from './loader';

const MAGIC = Buffer.from('#etcd-shield-archive v1\n');

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : fallback;
  if (v === undefined) throw new Error(`--${name} is required`);
  return v;
}

// --- protobuf wire format, by hand -----------------------------------------

function varint(out: number[], n: number): void {
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
}

/** RangeRequest{key=1, range_end=2, limit=3, revision=4}. */
function rangeRequest(key: Buffer, rangeEnd: Buffer, limit: number, revision: number, keysOnly = false): Buffer {
  const head: number[] = [];
  const parts: Buffer[] = [];
  const bytesField = (tag: number, b: Buffer) => {
    const h: number[] = [tag];
    varint(h, b.length);
    parts.push(Buffer.from(h), b);
  };
  bytesField(0x0a, key);
  bytesField(0x12, rangeEnd);
  head.push(0x18);
  varint(head, limit);
  if (revision > 0) {
    head.push(0x20);
    varint(head, revision);
  }
  if (keysOnly) head.push(0x40, 1);
  parts.push(Buffer.from(head));
  return Buffer.concat(parts);
}

/** A decoded Range reply: archive frames for its KeyValues, and what paging needs. */
interface RawPage {
  frames: Buffer;
  count: number;
  more: boolean;
  total: number;
  revision: number;
  lastKey: Buffer | undefined;
  keyBytes: number;
  largest: number;
}

/** Lease ids seen in records (as decimal strings). */
const leaseIds = new Set<string>();

let pos = 0;
let lo = 0;
let hi = 0;
/** Reads a varint at pos into lo/hi (two 32-bit halves) and advances pos. */
function readVarint(b: Buffer): void {
  lo = 0;
  hi = 0;
  let shift = 0;
  let byte: number;
  do {
    byte = b[pos++]!;
    if (shift < 28) lo |= (byte & 0x7f) << shift;
    else if (shift === 28) {
      lo |= (byte & 0x0f) << 28;
      hi |= (byte & 0x7f) >>> 4;
    } else hi |= (byte & 0x7f) << (shift - 32);
    shift += 7;
  } while (byte & 0x80);
  lo >>>= 0;
  hi >>>= 0;
}

const RECORD_FIXED = 4 + 32;
// Scratch per KeyValue: key start, key length, value start, value length, then lo/hi of four int64s.
let scratch = new Uint32Array(14 * 1024);

function decodeRange(b: Buffer): RawPage {
  pos = 0;
  let n = 0;
  let more = false;
  let total = 0;
  let revision = 0;
  let size = 0;
  let largest = 0;
  let keyBytes = 0;
  while (pos < b.length) {
    const tag = b[pos++]!;
    if (tag === 0x12) {
      // kvs
      readVarint(b);
      const end = pos + lo;
      if ((n + 1) * 14 > scratch.length) {
        const s = new Uint32Array(scratch.length * 2);
        s.set(scratch);
        scratch = s;
      }
      const o = n * 14;
      scratch.fill(0, o, o + 14);
      while (pos < end) {
        const t = b[pos++]!;
        const field = t >>> 3;
        if ((t & 7) === 2) {
          readVarint(b);
          if (field === 1) {
            scratch[o] = pos;
            scratch[o + 1] = lo;
          } else if (field === 5) {
            scratch[o + 2] = pos;
            scratch[o + 3] = lo;
          }
          pos += lo;
        } else {
          readVarint(b);
          // create_revision=2, mod_revision=3, version=4, lease=6 -> slots 0..3
          const slot = field === 6 ? 3 : field - 2;
          if (slot >= 0 && slot <= 3) {
            scratch[o + 4 + slot * 2] = hi;
            scratch[o + 5 + slot * 2] = lo;
          }
        }
      }
      const kv = scratch[o + 1]! + scratch[o + 3]!;
      size += 5 + RECORD_FIXED + kv;
      keyBytes += kv;
      if (kv > largest) largest = kv;
      n++;
    } else if (tag === 0x0a) {
      // header: find revision (field 3)
      readVarint(b);
      const end = pos + lo;
      while (pos < end) {
        const t = b[pos++]!;
        if ((t & 7) === 2) {
          readVarint(b);
          pos += lo;
        } else {
          readVarint(b);
          if (t >>> 3 === 3) revision = hi * 2 ** 32 + lo;
        }
      }
    } else if (tag === 0x18) {
      readVarint(b);
      more = lo !== 0;
    } else if (tag === 0x20) {
      readVarint(b);
      total = hi * 2 ** 32 + lo;
    } else {
      // unknown field: skip by wire type
      const wt = tag & 7;
      if (wt === 0) readVarint(b);
      else if (wt === 2) {
        readVarint(b);
        pos += lo;
      } else if (wt === 1) pos += 8;
      else if (wt === 5) pos += 4;
      else throw new Error(`unexpected wire type ${wt}`);
    }
  }
  const frames = Buffer.allocUnsafe(size);
  let w = 0;
  for (let i = 0; i < n; i++) {
    const o = i * 14;
    const ks = scratch[o]!;
    const kl = scratch[o + 1]!;
    const vs = scratch[o + 2]!;
    const vl = scratch[o + 3]!;
    frames[w] = 0x52;
    frames.writeUInt32BE(RECORD_FIXED + kl + vl, w + 1);
    frames.writeUInt32BE(kl, w + 5);
    w += 9;
    w += b.copy(frames, w, ks, ks + kl);
    if (scratch[o + 10] || scratch[o + 11]) leaseIds.add(((BigInt(scratch[o + 10]!) << 32n) | BigInt(scratch[o + 11]!)).toString());
    for (let s = 0; s < 4; s++) {
      frames.writeUInt32BE(scratch[o + 4 + s * 2]!, w);
      frames.writeUInt32BE(scratch[o + 5 + s * 2]!, w + 4);
      w += 8;
    }
    w += b.copy(frames, w, vs, vs + vl);
  }
  const lastKey = n ? Buffer.from(b.subarray(scratch[(n - 1) * 14]!, scratch[(n - 1) * 14]! + scratch[(n - 1) * 14 + 1]!)) : undefined;
  return { frames, count: n, more, total, revision, lastKey, keyBytes, largest };
}

/** Keys-only pass at the pinned revision, in big raw pages: every stride-th key. */
async function sampleKeys(range: (req: Buffer) => Promise<Buffer>, from: Buffer, revision: number, stride: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  const zero = Buffer.from([0]);
  let start: Buffer | undefined = from;
  let seen = 0;
  while (start) {
    const b = await range(rangeRequest(start, zero, 100_000, revision, true));
    pos = 0;
    let more = false;
    let last: [number, number] | undefined;
    while (pos < b.length) {
      const tag = b[pos++]!;
      if (tag === 0x12) {
        readVarint(b);
        const end = pos + lo;
        while (pos < end) {
          const t = b[pos++]!;
          readVarint(b);
          if ((t & 7) === 2) {
            if (t >>> 3 === 1) {
              last = [pos, lo];
              if (++seen % stride === 0) out.push(Buffer.from(b.subarray(pos, pos + lo)));
            }
            pos += lo;
          }
        }
      } else if ((tag & 7) === 2) {
        readVarint(b);
        pos += lo;
      } else {
        readVarint(b);
        if (tag === 0x18) more = lo !== 0;
      }
    }
    start = more && last ? Buffer.concat([b.subarray(last[0], last[0] + last[1]), zero]) : undefined;
  }
  return out;
}

function jsonFrame(type: number, value: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(value));
  const head = Buffer.alloc(5);
  head[0] = type;
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

// --- the backup ------------------------------------------------------------

async function main(): Promise<void> {
  const etcd = client(arg('endpoints'));
  const budget = Number(arg('page-bytes', String(4 * 1024 * 1024)));
  const out = createWriteStream(arg('out'), { highWaterMark: 4 * 1024 * 1024 });
  const hash = createHash('sha256');
  const write = async (buf: Buffer, hashed = true) => {
    if (hashed) hash.update(buf);
    if (!out.write(buf)) await new Promise<void>((r) => out.once('drain', () => r()));
  };
  // etcd3's pool is protected; its withConnection hands over the grpc-js client and auth metadata.
  const pool = (etcd as unknown as { pool: { withConnection<R>(s: 'KV', fn: (a: { client: Client; metadata: Metadata }) => Promise<R>): Promise<R> } }).pool;
  const range = (req: Buffer): Promise<Buffer> =>
    pool.withConnection('KV', ({ client: c, metadata }) =>
      new Promise<Buffer>((resolve, reject) =>
        c.makeUnaryRequest<Buffer, Buffer>('/etcdserverpb.KV/Range', (x) => x, (x) => x, req, metadata, { deadline: Date.now() + 30_000 }, (err, res) =>
          err ? reject(err) : resolve(res!),
        ),
      ),
    );

  const zero = Buffer.from([0]);
  let limit = 16;
  let page = decodeRange(await range(rangeRequest(zero, zero, limit, 0)));
  const revision = page.revision;
  await write(Buffer.concat([MAGIC, jsonFrame(0x48, { format: 1, tool: 'raw-backup experiment', revision: String(revision), prefix: '', clusterId: '0', memberId: '0', createdAt: new Date().toISOString() })]));
  let records = 0;
  const after = (k: Buffer) => Buffer.concat([k, zero]);
  const bounded = process.argv.includes('--bounded');
  const stride = Number(arg('stride', '1000'));
  const maxLimit = Number(arg('max-limit', '10000'));
  const boundaries = bounded && page.more && page.lastKey ? await sampleKeys(range, after(page.lastKey), revision, stride) : [];
  /** range_end for a page of `limit` keys from start: a sample about limit + stride keys on, or the end. */
  const boundAfter = (start: Buffer, limit: number): Buffer => boundaryAfter(boundaries, start, limit, stride) ?? zero;
  let start: Buffer | undefined = page.more && page.lastKey ? after(page.lastKey) : undefined;
  const ahead = Number(arg('ahead', '1'));
  if (ahead > 1 && boundaries.length && start) {
    // Segments between boundaries are known up front, so several can be in flight at once.
    records += page.count;
    await write(page.frames);
    const k = Math.max(1, Math.floor(Math.min(maxLimit, budget / Math.max(1, page.largest)) / stride));
    const segs: { start: Buffer; end: Buffer }[] = [];
    for (let j = 0, from: Buffer = start; ; j++) {
      const to = (j + 1) * k - 1 < boundaries.length ? boundaries[(j + 1) * k - 1]! : zero;
      segs.push({ start: from, end: to });
      if (to === zero) break;
      from = to;
    }
    const fetchSeg = async (sg: { start: Buffer; end: Buffer }): Promise<{ frames: Buffer[]; count: number }> => {
      const frames: Buffer[] = [];
      let count = 0;
      for (let st = sg.start; ; ) {
        const p = decodeRange(await range(rangeRequest(st, sg.end, k * stride + 1, revision)));
        frames.push(p.frames);
        count += p.count;
        if (!p.more || !p.lastKey) break;
        st = after(p.lastKey);
      }
      return { frames, count };
    };
    const inflight: Promise<{ frames: Buffer[]; count: number }>[] = [];
    let nextSeg = 0;
    while (nextSeg < segs.length || inflight.length) {
      while (inflight.length < ahead && nextSeg < segs.length) {
        const pr = fetchSeg(segs[nextSeg++]!);
        pr.catch(() => undefined);
        inflight.push(pr);
      }
      const got = await inflight.shift()!;
      records += got.count;
      for (const f of got.frames) await write(f);
    }
    start = undefined;
    page = { ...page, count: 0, frames: Buffer.alloc(0), more: false };
  }
  for (;;) {
    records += page.count;
    // Plan the next page as pages.ts does (largest key-value, growth capped at 4x); one page in flight.
    let next: Promise<Buffer> | undefined;
    let end: Buffer = zero;
    if (start) {
      limit = Math.max(1, Math.min(maxLimit, limit * 4, Math.floor(budget / Math.max(1, page.largest || 1))));
      end = boundaries.length ? boundAfter(start, limit) : zero;
      next = range(rangeRequest(start, end, limit, revision));
    }
    await write(page.frames);
    if (!next) break;
    const largest = page.largest;
    page = decodeRange(await next);
    if (!page.largest) page.largest = largest;
    // More keys before `end`: go on after the last one; none: go on from `end`, unless that was the end.
    start = page.more && page.lastKey ? after(page.lastKey) : end !== zero ? end : undefined;
  }
  for (const id of leaseIds) {
    const r = await etcd.leaseClient.leaseTimeToLive({ ID: id, keys: false });
    const f = Buffer.alloc(29);
    f[0] = 0x4c;
    f.writeUInt32BE(24, 1);
    f.writeBigInt64BE(BigInt(id), 5);
    f.writeBigInt64BE(BigInt(r.grantedTTL), 13);
    f.writeBigInt64BE(BigInt(r.TTL), 21);
    await write(f);
  }
  const trailer = jsonFrame(0x54, { records, leases: leaseIds.size, sha256: hash.digest('hex') });
  await write(trailer, false);
  await new Promise<void>((r) => out.end(r));
  process.stderr.write(`raw-backup: ${records} records at revision ${revision}\n`);
  etcd.close();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`raw-backup: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
