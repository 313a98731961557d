import { Writer } from 'protobufjs/minimal';
import type { RecordTable } from '../archive/types';
import { int64Decimal } from '../util/int64';
import { longDecimal, Reader } from '../util/protobuf';

// Range messages of etcd's rpc.proto and kv.proto, read with protobufjs's
// wire Reader instead of etcd3's decode-then-toObject: a page of key-values
// stays one reply buffer plus an index into it, with no object per key and
// no int64 turned into a string (docs/performance.md, "How backup got here",
// 1: "Range replies stay bytes").

export interface RangeRequest {
  key: Buffer;
  rangeEnd: Buffer;
  limit?: number;
  /** Decimal; absent or "0" reads the latest revision. */
  revision?: string;
  keysOnly?: boolean;
}

/** RangeRequest field numbers (rpc.proto). */
const enum Req {
  Key = 1,
  RangeEnd = 2,
  Limit = 3,
  Revision = 4,
  KeysOnly = 8,
}

const VARINT = 0;
const LENGTH_DELIMITED = 2;
const tag = (field: number, wireType: number) => (field << 3) | wireType;

export function encodeRangeRequest(req: RangeRequest): Uint8Array {
  const w = Writer.create();
  w.uint32(tag(Req.Key, LENGTH_DELIMITED)).bytes(req.key);
  w.uint32(tag(Req.RangeEnd, LENGTH_DELIMITED)).bytes(req.rangeEnd);
  if (req.limit) w.uint32(tag(Req.Limit, VARINT)).int64(req.limit);
  if (req.revision && req.revision !== '0') w.uint32(tag(Req.Revision, VARINT)).int64(req.revision);
  if (req.keysOnly) w.uint32(tag(Req.KeysOnly, VARINT)).bool(true);
  return w.finish();
}

export interface RangeReply {
  revision: string;
  clusterId: string;
  memberId: string;
  kvs: KeyValues;
  more: boolean;
  /** Keys in the requested range at that revision, whatever the limit. */
  count: number;
}

// Per key-value: where its key and value lie in the reply, then the high and
// low 32 bits of create_revision, mod_revision, version and lease, which is
// the order the archive frames them in.
const KEY_AT = 0;
const KEY_LEN = 1;
const VALUE_AT = 2;
const VALUE_LEN = 3;
const INT64S = 4;
const SLOTS = 12;

export const enum Int64Field {
  CreateRevision = 0,
  ModRevision = 1,
  Version = 2,
  Lease = 3,
}

/** The key-values of one reply, read by index. */
export class KeyValues implements RecordTable {
  /** Bytes of keys and values, and the largest single key + value. */
  bytes = 0;
  largest = 0;

  constructor(
    private readonly reply: Buffer,
    private readonly slots: Uint32Array,
    readonly length: number,
  ) {
    for (let i = 0; i < length; i++) {
      const n = slots[i * SLOTS + KEY_LEN]! + slots[i * SLOTS + VALUE_LEN]!;
      this.bytes += n;
      if (n > this.largest) this.largest = n;
    }
  }

  key(i: number): Buffer {
    const o = i * SLOTS;
    return this.reply.subarray(this.slots[o + KEY_AT], this.slots[o + KEY_AT]! + this.slots[o + KEY_LEN]!);
  }

  value(i: number): Buffer {
    const o = i * SLOTS;
    return this.reply.subarray(this.slots[o + VALUE_AT], this.slots[o + VALUE_AT]! + this.slots[o + VALUE_LEN]!);
  }

  keyLength(i: number): number {
    return this.slots[i * SLOTS + KEY_LEN]!;
  }

  valueLength(i: number): number {
    return this.slots[i * SLOTS + VALUE_LEN]!;
  }

  copyKey(i: number, target: Buffer, at: number): number {
    const o = i * SLOTS;
    return this.reply.copy(target, at, this.slots[o + KEY_AT], this.slots[o + KEY_AT]! + this.slots[o + KEY_LEN]!);
  }

  copyValue(i: number, target: Buffer, at: number): number {
    const o = i * SLOTS;
    return this.reply.copy(target, at, this.slots[o + VALUE_AT], this.slots[o + VALUE_AT]! + this.slots[o + VALUE_LEN]!);
  }

  writeInt64s(i: number, target: Buffer, at: number): void {
    const o = i * SLOTS + INT64S;
    for (let f = 0; f < 8; f++) target.writeUInt32BE(this.slots[o + f]!, at + f * 4);
  }

  /** Decimal, as etcd3 would give it. */
  int64(i: number, field: Int64Field): string {
    const o = i * SLOTS + INT64S + field * 2;
    return int64Decimal(this.slots[o]!, this.slots[o + 1]!);
  }

  /** Whether the key is attached to a lease (cheaper than int64(i, Lease) !== '0'). */
  hasLease(i: number): boolean {
    const o = i * SLOTS + INT64S + Int64Field.Lease * 2;
    return (this.slots[o]! | this.slots[o + 1]!) !== 0;
  }
}

/** RangeResponse field numbers (rpc.proto), and those of its header and KeyValues (kv.proto). */
const enum Res {
  Header = 1,
  Kvs = 2,
  More = 3,
  Count = 4,
}
const enum Head {
  ClusterId = 1,
  MemberId = 2,
  Revision = 3,
}
/** mvccpb.KeyValue's field numbers (kv.proto); etcd stores the same message in its snapshots. */
export const enum Kv {
  Key = 1,
  CreateRevision = 2,
  ModRevision = 3,
  Version = 4,
  Value = 5,
  Lease = 6,
}

export function decodeRangeReply(reply: Buffer): RangeReply {
  const r = Reader.create(reply);
  const out = { revision: '0', clusterId: '0', memberId: '0', more: false, count: 0 };
  let slots = new Uint32Array(SLOTS * 256);
  let n = 0;
  while (r.pos < r.len) {
    const t = r.uint32();
    switch (t >>> 3) {
      case Res.Header:
        readHeader(r, r.uint32() + r.pos, out);
        break;
      case Res.Kvs:
        if ((n + 1) * SLOTS > slots.length) {
          const grown = new Uint32Array(slots.length * 2);
          grown.set(slots);
          slots = grown;
        }
        readKeyValue(r, r.uint32() + r.pos, slots, n * SLOTS);
        n++;
        break;
      case Res.More:
        out.more = r.bool();
        break;
      case Res.Count:
        out.count = Number(longDecimal(r.int64(), false));
        break;
      default:
        r.skipType(t & 7);
    }
  }
  return { ...out, kvs: new KeyValues(reply, slots, n) };
}

function readHeader(r: Reader, end: number, out: { revision: string; clusterId: string; memberId: string }): void {
  while (r.pos < end) {
    const t = r.uint32();
    switch (t >>> 3) {
      case Head.ClusterId:
        out.clusterId = longDecimal(r.uint64(), true);
        break;
      case Head.MemberId:
        out.memberId = longDecimal(r.uint64(), true);
        break;
      case Head.Revision:
        out.revision = longDecimal(r.int64(), false);
        break;
      default:
        r.skipType(t & 7);
    }
  }
}

function readKeyValue(r: Reader, end: number, slots: Uint32Array, o: number): void {
  slots.fill(0, o, o + SLOTS);
  while (r.pos < end) {
    const t = r.uint32();
    const field = t >>> 3;
    if (field === Kv.Key || field === Kv.Value) {
      const len = r.uint32();
      const at = field === Kv.Key ? KEY_AT : VALUE_AT;
      slots[o + at] = r.pos;
      slots[o + at + 1] = len;
      r.skip(len);
    } else if (field >= Kv.CreateRevision && field <= Kv.Lease && field !== Kv.Value) {
      const v = r.int64();
      const slot = o + INT64S + 2 * (field === Kv.Lease ? Int64Field.Lease : field - Kv.CreateRevision);
      slots[slot] = v.high >>> 0;
      slots[slot + 1] = v.low >>> 0;
    } else {
      r.skipType(t & 7);
    }
  }
}
