import { Reader } from 'protobufjs/minimal';
import { smallDecimal } from '../util/int64';

// TxnRequests of unconditional puts and deletes, written by hand into a
// buffer restore owns (docs/performance.md, "Restore"). A TxnRequest with no
// compare and no failure ops is just its success ops one after another, each
// a field-2 RequestOp, so any run of whole ops is a TxnRequest too: that is
// how a transaction etcd finds too large is split without encoding again.

const LENGTH_DELIMITED = 2;
const tag = (field: number, wireType: number) => (field << 3) | wireType;

const TXN_SUCCESS = tag(2, LENGTH_DELIMITED);
const OP_PUT = tag(2, LENGTH_DELIMITED);
const OP_DELETE_RANGE = tag(3, LENGTH_DELIMITED);
const KEY = tag(1, LENGTH_DELIMITED); // PutRequest.key and DeleteRangeRequest.key
const PUT_VALUE = tag(2, LENGTH_DELIMITED);
const PUT_LEASE = tag(3, 0);

function varintSize(n: number): number {
  let size = 1;
  while (n > 0x7f) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function writeVarint(buf: Buffer, at: number, n: number): number {
  while (n > 0x7f) {
    buf[at++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  buf[at++] = n;
  return at;
}

const NO_LEASE: readonly number[] = [];

/** The int64 lease as varint bytes; empty for no lease ("0"). */
function leaseVarint(lease: string): readonly number[] {
  if (lease === '0') return NO_LEASE;
  const out: number[] = [];
  // Most leases fit a double; the rest (all 63 bits are used) take BigInt.
  const small = smallDecimal(lease);
  if (small !== undefined) {
    let n = small;
    while (n > 0x7f) {
      out.push((n % 128) | 0x80);
      n = Math.floor(n / 128);
    }
    out.push(n);
    return out;
  }
  let n = BigInt.asUintN(64, BigInt(lease));
  while (n > 0x7fn) {
    out.push(Number(n & 0x7fn) | 0x80);
    n >>= 7n;
  }
  out.push(Number(n));
  return out;
}

/** Bytes a put or delete of this size takes in a TxnRequest. */
function opSize(body: number): number {
  const op = 1 + varintSize(body) + body;
  return 1 + varintSize(op) + op;
}

/** One transaction's ops, encoded as they are added; `starts` marks where each op begins. */
export class TxnEncoder {
  length = 0;
  readonly starts: number[] = [];

  constructor(readonly buf: Buffer) {}

  get ops(): number {
    return this.starts.length;
  }

  get bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }

  static putSize(key: Uint8Array, value: Uint8Array, lease: string): number {
    return opSize(TxnEncoder.putBody(key.length, value.length, leaseVarint(lease).length));
  }

  static deleteSize(key: Uint8Array): number {
    return opSize(1 + varintSize(key.length) + key.length);
  }

  private static putBody(keyLength: number, valueLength: number, leaseLength: number): number {
    return 1 + varintSize(keyLength) + keyLength + 1 + varintSize(valueLength) + valueLength + (leaseLength ? 1 + leaseLength : 0);
  }

  /** Copies key and value in: the caller's buffers are free again on return. The buffer must have room (putSize). */
  put(key: Uint8Array, value: Uint8Array, lease: string): void {
    const leaseBytes = leaseVarint(lease);
    const body = TxnEncoder.putBody(key.length, value.length, leaseBytes.length);
    let at = this.open(OP_PUT, body);
    const buf = this.buf;
    buf[at++] = KEY;
    at = writeVarint(buf, at, key.length);
    buf.set(key, at);
    at += key.length;
    buf[at++] = PUT_VALUE;
    at = writeVarint(buf, at, value.length);
    buf.set(value, at);
    at += value.length;
    if (leaseBytes.length) {
      buf[at++] = PUT_LEASE;
      for (const b of leaseBytes) buf[at++] = b;
    }
    this.length = at;
  }

  delete(key: Uint8Array): void {
    let at = this.open(OP_DELETE_RANGE, 1 + varintSize(key.length) + key.length);
    this.buf[at++] = KEY;
    at = writeVarint(this.buf, at, key.length);
    this.buf.set(key, at);
    this.length = at + key.length;
  }

  /** Writes the RequestOp's framing and returns where the request's own fields go. */
  private open(kind: number, body: number): number {
    this.starts.push(this.length);
    const op = 1 + varintSize(body) + body;
    let at = this.length;
    this.buf[at++] = TXN_SUCCESS;
    at = writeVarint(this.buf, at, op);
    this.buf[at++] = kind;
    return writeVarint(this.buf, at, body);
  }
}

/** How many of the ops that start at `starts` are puts (the rest are deletes). */
export function countPuts(txn: Uint8Array, starts: readonly number[]): number {
  let puts = 0;
  for (let at of starts) {
    at++; // the success field's tag
    while (txn[at++]! & 0x80); // its length
    if (txn[at] === OP_PUT) puts++;
  }
  return puts;
}

/** The key of the op that starts at `start` in an encoded TxnRequest (for error messages). */
export function opKey(txn: Uint8Array, start: number): Buffer {
  const r = Reader.create(txn.subarray(start));
  r.uint32(); // the success field's tag
  r.uint32(); // its length
  r.uint32(); // put or delete
  r.uint32(); // its length
  r.uint32(); // the key's tag
  return Buffer.from(r.bytes());
}
