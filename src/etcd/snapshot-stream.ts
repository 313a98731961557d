import type { Readable } from 'node:stream';
import { longDecimal, Reader } from '../util/protobuf';
import type { Connection } from './connect';
import { asIs, poolOf } from './unary';

const EMPTY: Buffer = Buffer.alloc(0);

/**
 * Maintenance.Snapshot as a stream of raw SnapshotResponse messages, through
 * etcd3's pool like kvUnary. etcd3 1.1.2's own snapshot() passes its
 * arguments to grpc-js in the wrong order, so the auth token never reaches
 * etcd and a cluster with authentication refuses it ("user name is empty").
 */
export async function snapshotStream(conn: Connection): Promise<Readable> {
  return poolOf(conn).withConnection('Maintenance', ({ client, metadata }) =>
    client.makeServerStreamRequest('/etcdserverpb.Maintenance/Snapshot', asIs, asIs, EMPTY, metadata, {}),
  );
}

/** SnapshotResponse {header = 1 (revision = 3 inside), remaining_bytes = 2, blob = 3}; blob is a view of msg. */
export function decodeSnapshotResponse(msg: Buffer): { blob: Buffer; revision: string | null } {
  const r = Reader.create(msg);
  let blob = EMPTY;
  let revision: string | null = null;
  while (r.pos < r.len) {
    const t = r.uint32();
    if (t >>> 3 === 3 && (t & 7) === 2) {
      const len = r.uint32();
      blob = msg.subarray(r.pos, r.pos + len);
      r.skip(len);
    } else if (t >>> 3 === 1 && (t & 7) === 2) {
      const end = r.uint32() + r.pos;
      while (r.pos < end) {
        const h = r.uint32();
        if (h >>> 3 === 3 && (h & 7) === 0) revision = longDecimal(r.int64(), false);
        else r.skipType(h & 7);
      }
    } else {
      r.skipType(t & 7);
    }
  }
  return { blob, revision: revision === '0' ? null : revision };
}
