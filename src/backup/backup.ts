import { NativeEncoder, recordsSize } from '../archive/native';
import type { LeaseRecord } from '../archive/types';
import type { Connection } from '../etcd/connect';
import { explainEtcdError } from '../etcd/explain';
import { readPages } from '../etcd/pages';
import { Int64Field } from '../etcd/range-codec';
import { BufferPool } from '../io/buffer-pool';
import type { Sink } from '../io/sink';
import { TOOL_NAME, TOOL_VERSION } from '../version';
import { writeLegacy } from './legacy-backup';
import { mapLimit } from '../util/concurrency';

export type BackupFormat = 'etcd-shield' | 'legacy';

export interface BackupOptions {
  prefix: string;
  format: BackupFormat;
  pageBytes?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

export interface BackupSummary {
  format: BackupFormat;
  revision: string;
  keys: number;
  leases: number;
  bytes: number;
}

const LEASE_QUERY_CONCURRENCY = 16;

/**
 * One consistent backup: every page is read at the revision of the first,
 * and each page is written out (waiting for the reader) before the next is
 * taken, so memory holds the pages in flight (pages.ts) and about two
 * encoded ones, whatever the keyspace size.
 */
export async function backup(conn: Connection, sink: Sink, opts: BackupOptions): Promise<BackupSummary> {
  const pages = readPages(conn, { prefix: opts.prefix, pageBytes: opts.pageBytes, signal: opts.signal });
  if (opts.format === 'legacy') return writeLegacy(pages, sink, opts);

  const encoder = new NativeEncoder();
  const frames = new BufferPool();
  const leaseIds = new Set<string>();
  let keys = 0;
  let revision = '';
  for await (const page of pages) {
    if (!revision) {
      revision = page.revision;
      await sink.write(
        encoder.start({
          tool: `${TOOL_NAME} ${TOOL_VERSION}`,
          revision,
          prefix: opts.prefix,
          clusterId: page.clusterId,
          memberId: page.memberId,
          createdAt: new Date().toISOString(),
        }),
      );
    }
    const kvs = page.kvs;
    for (let i = 0; i < kvs.length; i++) if (kvs.hasLease(i)) leaseIds.add(kvs.int64(i, Int64Field.Lease));
    const buf = frames.take(recordsSize(kvs));
    await sink.write(encoder.records(kvs, buf), () => frames.give(buf));
    keys += page.kvs.length;
    opts.onProgress?.(keys, page.total);
  }
  const leases = await readLeases(conn, [...leaseIds], opts.signal);
  for (const lease of leases) await sink.write(encoder.lease(lease));
  await sink.write(encoder.finish());
  return { format: 'etcd-shield', revision, keys, leases: leases.length, bytes: sink.bytes };
}

/** Granted and remaining TTL of each lease; an expired one is kept with -1 remaining. */
async function readLeases(conn: Connection, ids: string[], signal?: AbortSignal): Promise<LeaseRecord[]> {
  return mapLimit(ids, LEASE_QUERY_CONCURRENCY, signal, async (id) => {
    try {
      const r = await conn.client.leaseClient.leaseTimeToLive({ ID: id, keys: false });
      return { id, grantedTtl: r.grantedTTL, remainingTtl: r.TTL };
    } catch (err) {
      throw explainEtcdError(err, { config: conn.config, action: `read lease ${id} of` });
    }
  });
}
