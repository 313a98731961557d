import type { RecordRef } from '../archive/types';
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
  return revisionMainAt(key, 0, key.length);
}

/** revisionMain of buf[at, at + length), without a view of it. */
export function revisionMainAt(buf: Buffer, at: number, length: number): number | undefined {
  if (length !== REV_BYTES && !(length === REV_BYTES + 1 && buf[at + REV_BYTES] === TOMBSTONE)) return undefined;
  if (buf[at + 8] !== SEPARATOR) return undefined;
  const hi = buf.readUInt32BE(at);
  return hi >= SAFE_HIGH ? undefined : hi * 2 ** 32 + buf.readUInt32BE(at + 4);
}

/** Whether a revision key of that length marks a deletion (revisionMainAt has checked its last byte). */
export const isTombstoneLength = (length: number): boolean => length === REV_BYTES + 1;

/** The first revision key of a main revision, for seeking. */
export function revisionKey(main: number): Buffer {
  const buf = Buffer.alloc(REV_BYTES);
  buf.writeUInt32BE(Math.floor(main / 2 ** 32), 0);
  buf.writeUInt32BE(main % 2 ** 32, 4);
  buf[8] = SEPARATOR;
  return buf;
}

/**
 * An mvccpb.KeyValue read in place: where its key and value lie in the
 * buffer, and each int64 as its two 32-bit halves. One is reused for every
 * entry of a pass, so reading a snapshot's entries allocates nothing per
 * entry; strings and views are made only for what is kept.
 */
export class KeyValueSpan implements RecordRef {
  buf: Buffer = EMPTY;
  keyAt = 0;
  keyLength = 0;
  valueAt = 0;
  valueLength = 0;
  /** Halves (high, low) of create_revision, mod_revision, version and lease, in that order. */
  readonly int64s = new Uint32Array(8);

  key(): Buffer {
    return this.buf.subarray(this.keyAt, this.keyAt + this.keyLength);
  }

  value(): Buffer {
    return this.buf.subarray(this.valueAt, this.valueAt + this.valueLength);
  }

  copyKeyValue(into: Buffer, at: number): number {
    const k = this.buf.copy(into, at, this.keyAt, this.keyAt + this.keyLength);
    return k + this.buf.copy(into, at + k, this.valueAt, this.valueAt + this.valueLength);
  }

  /** The int64 as a double: exact below 2^53 and non-negative, else Infinity (no revision is that large). */
  small(field: KvInt): number {
    const hi = this.int64s[field * 2]!;
    return hi >= SAFE_HIGH ? Infinity : hi * 2 ** 32 + this.int64s[field * 2 + 1]!;
  }

  decimal(field: KvInt): string {
    return int64Decimal(this.int64s[field * 2]!, this.int64s[field * 2 + 1]!);
  }

  hasLease(): boolean {
    return (this.int64s[KvInt.Lease * 2]! | this.int64s[KvInt.Lease * 2 + 1]!) !== 0;
  }

  hasPrefix(prefix: Buffer): boolean {
    return this.keyLength >= prefix.length && this.buf.compare(prefix, 0, prefix.length, this.keyAt, this.keyAt + prefix.length) === 0;
  }

  lease(): string {
    return this.hasLease() ? this.decimal(KvInt.Lease) : '0';
  }
}

export const enum KvInt {
  CreateRevision = 0,
  ModRevision = 1,
  Version = 2,
  Lease = 3,
}

const EMPTY = Buffer.alloc(0);

/** Where readVarint has got to, and the varint it read as (hi, lo): one object for every call, so a pass allocates nothing per entry. */
const cursor = { pos: 0, hi: 0, lo: 0 };

/** Reads a varint at cursor.pos into cursor.hi and .lo; false when it runs past end or over 10 bytes. */
function readVarint(buf: Buffer, end: number): boolean {
  const c = cursor;
  let hi = 0;
  let lo = 0;
  for (let shift = 0; shift < 70; shift += 7) {
    if (c.pos >= end) return false;
    const b = buf[c.pos++]!;
    const bits = b & 0x7f;
    if (shift < 28) lo |= bits << shift;
    else if (shift === 28) {
      lo |= (bits & 0x0f) << 28;
      hi |= bits >>> 4;
    } else hi |= bits << (shift - 32);
    if (b < 0x80) {
      c.hi = hi >>> 0;
      c.lo = lo >>> 0;
      return true;
    }
  }
  return false;
}

/**
 * Reads the mvccpb.KeyValue in buf[at, end) into out. Unknown fields are
 * skipped; a field of an unexpected wire type, a group, or anything that
 * runs past end is a damaged entry, named as entry `entry` of `page`.
 */
export function readKeyValue(buf: Buffer, at: number, end: number, out: KeyValueSpan, entry: number, page: { readonly where: string }): void {
  out.buf = buf;
  out.keyAt = out.keyLength = out.valueAt = out.valueLength = 0;
  out.int64s.fill(0);
  const c = cursor;
  c.pos = at;
  while (c.pos < end) {
    if (!readVarint(buf, end) || c.hi !== 0) throw badKeyValue(entry, page, 'a field tag runs past its end');
    const field = c.lo >>> 3;
    const wire = c.lo & 7;
    if (wire === 2) {
      if (!readVarint(buf, end) || c.hi !== 0 || c.lo > end - c.pos) throw badKeyValue(entry, page, 'a length runs past its end');
      if (field === Kv.Key) {
        out.keyAt = c.pos;
        out.keyLength = c.lo;
      } else if (field === Kv.Value) {
        out.valueAt = c.pos;
        out.valueLength = c.lo;
      }
      c.pos += c.lo;
    } else if (wire === 0) {
      if (!readVarint(buf, end)) throw badKeyValue(entry, page, 'a number runs past its end');
      if (field >= Kv.CreateRevision && field <= Kv.Lease && field !== Kv.Value) {
        const slot = 2 * (field === Kv.Lease ? KvInt.Lease : field - Kv.CreateRevision);
        out.int64s[slot] = c.hi;
        out.int64s[slot + 1] = c.lo;
      }
    } else if (wire === 1 || wire === 5) {
      c.pos += wire === 1 ? 8 : 4;
      if (c.pos > end) throw badKeyValue(entry, page, 'a fixed-size field runs past its end');
    } else {
      throw badKeyValue(entry, page, `wire type ${wire} in field ${field}`);
    }
  }
  if (out.keyLength === 0) throw damaged(`entry ${entry} of ${page.where}`, 'its mvccpb.KeyValue has an empty key');
}

function badKeyValue(entry: number, page: { readonly where: string }, what: string) {
  return damaged(`entry ${entry} of ${page.where}`, `its mvccpb.KeyValue does not decode (${what})`);
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
