import { Kv } from '../etcd/range-codec';
import { int64Decimal } from '../util/int64';
import { longDecimal, Reader } from '../util/protobuf';
import { damaged } from './page';

// etcd's mvcc layout in bbolt: the `key` bucket maps a revision (8-byte main,
// '_', 8-byte sub, and a trailing 't' for a deletion) to an mvccpb.KeyValue;
// `lease` maps an 8-byte lease id to a leasepb.Lease; `meta` holds the
// compaction's revisions in the same 17-byte form.
export const KEY_BUCKET = 'key';
export const LEASE_BUCKET = 'lease';
export const META_BUCKET = 'meta';
export const SCHEDULED_COMPACT = 'scheduledCompactRev';
export const FINISHED_COMPACT = 'finishedCompactRev';
const REV_BYTES = 17;
const TOMBSTONE = 0x74; // 't'
const SEPARATOR = 0x5f; // '_'
const SAFE_HIGH = 2 ** 21;

/** A revision's main part, or undefined when the bytes are not a revision. */
export function revisionMain(key: Buffer): number | undefined {
  if (key.length !== REV_BYTES && !(key.length === REV_BYTES + 1 && key[REV_BYTES] === TOMBSTONE)) return undefined;
  if (key[8] !== SEPARATOR) return undefined;
  const hi = key.readUInt32BE(0);
  return hi >= SAFE_HIGH ? undefined : hi * 2 ** 32 + key.readUInt32BE(4);
}

export const isTombstone = (key: Buffer): boolean => key.length === REV_BYTES + 1;

/** The first revision key of a main revision, for seeking. */
export function revisionKey(main: number): Buffer {
  const buf = Buffer.alloc(REV_BYTES);
  buf.writeUInt32BE(Math.floor(main / 2 ** 32), 0);
  buf.writeUInt32BE(main % 2 ** 32, 4);
  buf[8] = SEPARATOR;
  return buf;
}

/** The parts of an mvccpb.KeyValue restore needs; key and value are views of the page. */
export interface KeyValueView {
  key: Buffer;
  value: Buffer;
  /** Decimal; "0" for no lease. */
  lease: string;
  /** Main revision it says it was written at (0 for a deletion, which records none). */
  modRevision: number;
  createRevision: string;
  version: string;
}

const EMPTY = Buffer.alloc(0);

/** Decodes an mvccpb.KeyValue; where names the entry for an error. */
export function decodeKeyValue(buf: Buffer, where: () => string): KeyValueView {
  const out: KeyValueView = { key: EMPTY, value: EMPTY, lease: '0', modRevision: 0, createRevision: '0', version: '0' };
  try {
    const r = Reader.create(buf);
    while (r.pos < r.len) {
      const t = r.uint32();
      const field = t >>> 3;
      if ((field === Kv.Key || field === Kv.Value) && (t & 7) === 2) {
        const len = r.uint32();
        if (r.pos + len > r.len) throw new RangeError('length past the end');
        const bytes = buf.subarray(r.pos, r.pos + len);
        r.skip(len);
        if (field === Kv.Key) out.key = bytes;
        else out.value = bytes;
      } else if (field >= Kv.CreateRevision && field <= Kv.Lease && field !== Kv.Value && (t & 7) === 0) {
        const v = longDecimal(r.int64(), false);
        if (field === Kv.Lease) out.lease = v;
        else if (field === Kv.ModRevision) out.modRevision = Number(v);
        else if (field === Kv.CreateRevision) out.createRevision = v;
        else out.version = v;
      } else {
        r.skipType(t & 7);
      }
    }
  } catch (err) {
    throw damaged(where(), `its mvccpb.KeyValue does not decode (${(err as Error).message})`);
  }
  if (out.key.length === 0) throw damaged(where(), 'its mvccpb.KeyValue has an empty key');
  return out;
}

export interface LeaseView {
  id: string;
  ttl: string;
  /** 0 unless etcd checkpointed the lease. */
  remainingTtl: string;
}

/** Decodes a leasepb.Lease {ID = 1, TTL = 2, RemainingTTL = 3}. */
export function decodeLease(buf: Buffer, where: () => string): LeaseView {
  const out: LeaseView = { id: '0', ttl: '0', remainingTtl: '0' };
  try {
    const r = Reader.create(buf);
    while (r.pos < r.len) {
      const t = r.uint32();
      const field = t >>> 3;
      if (field >= 1 && field <= 3 && (t & 7) === 0) {
        const v = longDecimal(r.int64(), false);
        if (field === 1) out.id = v;
        else if (field === 2) out.ttl = v;
        else out.remainingTtl = v;
      } else {
        r.skipType(t & 7);
      }
    }
  } catch (err) {
    throw damaged(where(), `its leasepb.Lease does not decode (${(err as Error).message})`);
  }
  return out;
}

/** The lease id a `lease` bucket key holds (8 bytes, big-endian). */
export function leaseKeyId(key: Buffer): string | undefined {
  return key.length === 8 ? int64Decimal(key.readUInt32BE(0), key.readUInt32BE(4)) : undefined;
}
