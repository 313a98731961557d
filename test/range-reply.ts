// Records for the archive encoder, given the way backup gives them: as the
// key-values of a real RangeResponse (encoded with etcd3's own rpc.proto) read
// by src/etcd/range-codec.ts.
import { dirname, join } from 'node:path';
import { loadSync } from 'protobufjs';
import type { KeyRecord } from '../src/archive/types';
import { decodeRangeReply, type KeyValues } from '../src/etcd/range-codec';

const RangeResponse = loadSync(join(dirname(require.resolve('etcd3')), '..', 'proto', 'rpc.proto')).lookupType('etcdserverpb.RangeResponse');

export function rangeReplyOf(records: readonly KeyRecord[]): KeyValues {
  const kvs = records.map((r) => ({
    key: r.key,
    value: r.value,
    createRevision: r.createRevision,
    modRevision: r.modRevision,
    version: r.version,
    lease: r.lease,
  }));
  const reply = Buffer.from(RangeResponse.encode(RangeResponse.fromObject({ kvs, count: records.length })).finish());
  const { kvs: table } = decodeRangeReply(reply);
  if (table.length !== records.length) throw new Error(`the reply holds ${table.length} key-values, not ${records.length}`);
  return table;
}
