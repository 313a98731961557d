// The few etcd messages snapshot mode sends and reads, by hand (field numbers
// from etcd's rpc.proto), so that it needs neither etcd3 nor a parsed
// rpc.proto: AuthenticateRequest/Response, StatusResponse, SnapshotResponse.
// test/unit/maintenance-codec.test.ts checks them against protobufjs's
// encoding of etcd3's own rpc.proto.
import type { Long } from 'protobufjs/minimal';
import { longDecimal, Reader, Writer } from '../util/protobuf';

const LEN = 2;
const VARINT = 0;
const EMPTY: Buffer = Buffer.alloc(0);

const tag = (field: number, wire: number) => (field << 3) | wire;
const hex = (v: Long) => ((BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0)).toString(16);

/** AuthenticateRequest {name = 1, password = 2}. */
export function encodeAuthenticateRequest(name: string, password: string): Buffer {
  const w = Writer.create().uint32(tag(1, LEN)).string(name).uint32(tag(2, LEN)).string(password).finish();
  return Buffer.from(w.buffer, w.byteOffset, w.length);
}

/** AuthenticateResponse {header = 1, token = 2}: the token. */
export function decodeAuthenticateToken(msg: Buffer): string {
  const r = Reader.create(msg);
  let token = '';
  while (r.pos < r.len) {
    const t = r.uint32();
    if (t === tag(2, LEN)) token = r.string();
    else r.skipType(t & 7);
  }
  return token;
}

export interface MemberStatus {
  /** The cluster's id, in hexadecimal as etcdctl prints it. */
  clusterId: string;
  /** The answering member's id, in hexadecimal. */
  memberId: string;
  /** The leader's id, in hexadecimal. */
  leaderId: string;
  /** Alarms and other problems the member reports (etcd 3.4 and later). */
  errors: string[];
}

/** StatusResponse {header = 1 (cluster_id = 1, member_id = 2 inside), leader = 4, errors = 8 (repeated)}. */
export function decodeStatusResponse(msg: Buffer): MemberStatus {
  const r = Reader.create(msg);
  const status: MemberStatus = { clusterId: '0', memberId: '0', leaderId: '0', errors: [] };
  while (r.pos < r.len) {
    const t = r.uint32();
    if (t === tag(1, LEN)) {
      const end = r.uint32() + r.pos;
      while (r.pos < end) {
        const h = r.uint32();
        if (h === tag(1, VARINT)) status.clusterId = hex(r.uint64() as Long);
        else if (h === tag(2, VARINT)) status.memberId = hex(r.uint64() as Long);
        else r.skipType(h & 7);
      }
    } else if (t === tag(4, VARINT)) {
      status.leaderId = hex(r.uint64() as Long);
    } else if (t === tag(8, LEN)) {
      status.errors.push(r.string());
    } else {
      r.skipType(t & 7);
    }
  }
  return status;
}

/** SnapshotResponse {header = 1 (revision = 3 inside), remaining_bytes = 2, blob = 3}; blob is a view of msg. */
export function decodeSnapshotResponse(msg: Buffer): { blob: Buffer; revision: string | null } {
  const r = Reader.create(msg);
  let blob = EMPTY;
  let revision: string | null = null;
  while (r.pos < r.len) {
    const t = r.uint32();
    if (t === tag(3, LEN)) {
      const len = r.uint32();
      blob = msg.subarray(r.pos, r.pos + len);
      r.skip(len);
    } else if (t === tag(1, LEN)) {
      const end = r.uint32() + r.pos;
      while (r.pos < end) {
        const h = r.uint32();
        if (h === tag(3, VARINT)) revision = longDecimal(r.int64() as Long, false);
        else r.skipType(h & 7);
      }
    } else {
      r.skipType(t & 7);
    }
  }
  return { blob, revision: revision === '0' ? null : revision };
}
