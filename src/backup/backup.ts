import { NativeEncoder, nextSlice } from '../archive/native-encode';
import type { LeaseRecord } from '../archive/types';
import type { Connection } from '../etcd/connect';
import { explainEtcdError } from '../etcd/explain';
import { readPages } from '../etcd/pages';
import { Int64Field } from '../etcd/range-codec';
import { BufferPool } from '../io/buffer-pool';
import type { Sink } from '../io/sink';
import { TOOL_NAME, TOOL_VERSION } from '../version';
import { writeLegacy } from './legacy-backup';
import type { BackupOptions, BackupSummary } from './types';
import { limiter } from '../util/concurrency';

export type { BackupFormat, BackupOptions, BackupSummary } from './types';

const LEASE_QUERY_CONCURRENCY = 16;
/**
 * Pages are encoded in slices of about this size into reused buffers: a
 * page can come back several times the read budget (its keys guessed from
 * smaller values), and a page-sized buffer of its own would be new memory
 * each time, collected only later.
 */
const SLICE_BYTES = 1024 * 1024;
/** Slices written but not yet out, whose buffers come back to the pool. */
const SLICES_KEPT = 4;

/**
 * One consistent backup: every page is read at the revision of the first,
 * and each page is written out (waiting for the reader) before the next is
 * taken, so memory holds the pages in flight (pages.ts) and a few encoded
 * slices, whatever the keyspace size.
 */
export async function backup(conn: Connection, sink: Sink, opts: BackupOptions): Promise<BackupSummary> {
  const pages = readPages(conn, { prefix: opts.prefix, pageBytes: opts.pageBytes, signal: opts.signal });
  if (opts.format === 'legacy') return writeLegacy(pages, sink, opts);

  const encoder = new NativeEncoder();
  const frames = new BufferPool(SLICES_KEPT, SLICE_BYTES);
  const leases = new LeaseReader(conn, opts.signal);
  let keys = 0;
  let revision = '';
  for await (const page of pages) {
    if (!revision) {
      revision = page.revision;
      const takenAt = new Date();
      opts.onStart?.({ revision, clusterId: BigInt(page.clusterId).toString(16), takenAt });
      await sink.write(
        encoder.start({
          tool: `${TOOL_NAME} ${TOOL_VERSION}`,
          revision,
          prefix: opts.prefix,
          clusterId: page.clusterId,
          memberId: page.memberId,
          createdAt: takenAt.toISOString(),
        }),
      );
    }
    const kvs = page.kvs;
    for (let i = 0; i < kvs.length; i++) if (kvs.hasLease(i)) leases.see(kvs.int64(i, Int64Field.Lease));
    for (let from = 0; from < kvs.length; ) {
      const { to, bytes } = nextSlice(kvs, from, SLICE_BYTES);
      const buf = frames.take(bytes);
      await sink.write(encoder.records(kvs, buf, from, to), () => frames.give(buf));
      from = to;
    }
    keys += page.kvs.length;
    opts.onProgress?.(keys, page.total);
  }
  const found = await leases.all();
  for (const lease of found) await sink.write(encoder.lease(lease));
  await sink.write(encoder.finish());
  return { format: 'etcd-shield', revision, keys, leases: found.length, bytes: sink.bytes };
}

/**
 * Granted and remaining TTL of each lease a page names, read as soon as it
 * is first seen, while later pages are read: by the last page, few are left
 * to wait for. An expired lease is kept with -1 remaining.
 */
class LeaseReader {
  private readonly reads = new Map<string, Promise<LeaseRecord>>();
  private readonly run: <R>(fn: () => Promise<R>) => Promise<R>;

  constructor(
    private readonly conn: Connection,
    signal?: AbortSignal,
  ) {
    this.run = limiter(LEASE_QUERY_CONCURRENCY, signal);
  }

  see(id: string): void {
    if (this.reads.has(id)) return;
    const read = this.run(() => this.read(id));
    // A failure is reported by all(); until then it must not count as unhandled.
    read.catch(() => undefined);
    this.reads.set(id, read);
  }

  /** In the order first seen. */
  all(): Promise<LeaseRecord[]> {
    return Promise.all(this.reads.values());
  }

  private async read(id: string): Promise<LeaseRecord> {
    try {
      const r = await this.conn.client.leaseClient.leaseTimeToLive({ ID: id, keys: false });
      return { id, grantedTtl: r.grantedTTL, remainingTtl: r.TTL };
    } catch (err) {
      throw explainEtcdError(err, { config: this.conn.config, action: `read lease ${id}`, object: '' });
    }
  }
}
