import type { ArchiveSummary } from '../archive/verify';
import { CancelledError, ConfigError, RestoreInterruptedError, ShieldError } from '../errors';
import { isLeaseExists } from '../etcd/classify';
import type { Connection } from '../etcd/connect';
import { explainEtcdError } from '../etcd/explain';
import { countKeys, readPages } from '../etcd/pages';
import { Int64Field } from '../etcd/range-codec';
import { mapLimit } from '../util/concurrency';
import { planRestore, RestorePlan } from './plan';
import { BatchLimits, DEFAULT_LIMITS } from './limits';
import type { RecordSource } from './source';
import { BatchWriter, WriterStats } from './writer';

export interface RestoreOptions {
  /** Restore only keys starting with this; also the scope of overwrite. */
  prefix: string;
  overwrite: boolean;
  dryRun?: boolean;
  limits?: Partial<BatchLimits>;
  signal?: AbortSignal;
  onPhase?: (phase: string) => void;
  onProgress?: (done: number, total: number) => void;
}

export interface RestoreSummary {
  archive: ArchiveSummary;
  /** Keys under this prefix are the ones restore may change. */
  scope: string;
  written: number;
  deleted: number;
  leasesGranted: number;
  writer?: WriterStats;
  plan?: RestorePlan;
}

const LEASE_GRANT_CONCURRENCY = 16;

/**
 * The scope restore works in: the more specific of the restore prefix and the
 * prefix the archive was taken with. Disjoint prefixes would restore nothing
 * and, with overwrite, delete keys the archive never covered, so they fail.
 */
export function restoreScope(restorePrefix: string, archivePrefix: string): string {
  if (restorePrefix.startsWith(archivePrefix)) return restorePrefix;
  if (archivePrefix.startsWith(restorePrefix)) return archivePrefix;
  throw new ConfigError(
    `the archive holds only keys under ${JSON.stringify(archivePrefix)}, so restoring with prefix ${JSON.stringify(restorePrefix)} would restore nothing`,
    `use prefix ${JSON.stringify(archivePrefix)} (or a longer one), or leave prefix empty`,
  );
}

/**
 * Restore in three steps, each only after the one before succeeded:
 *  1. verify the whole source (nothing is written from a bad one);
 *  2. grant leases and write every key in scope, in batched transactions;
 *  3. with overwrite, delete keys in scope that step 2 did not write.
 * Step 3 comes last so that a failure never leaves keys deleted but not restored.
 */
export async function restore(conn: Connection, source: RecordSource, opts: RestoreOptions): Promise<RestoreSummary> {
  const limits = { ...DEFAULT_LIMITS, ...opts.limits };
  opts.onPhase?.('verifying the archive');
  const archive = await source.verify(opts.prefix, opts.signal);
  const scope = restoreScope(opts.prefix, archive.header?.prefix ?? '');
  const result: RestoreSummary = { archive, scope, written: 0, deleted: 0, leasesGranted: 0 };

  if (opts.dryRun) {
    opts.onPhase?.('comparing the archive with the cluster');
    result.plan = await planRestore(conn, source, scope, opts.signal);
    return result;
  }

  const ctx = (action: string) => ({ config: conn.config, action, prefix: scope });
  // Keys that step 2 writes get a newer mod_revision than this; step 3 deletes the older ones.
  const startRevision = opts.overwrite ? (await countKeys(conn, scope)).revision : '0';

  opts.onPhase?.('granting leases');
  const leases = archive.leases.filter((l) => archive.usedLeases.has(l.id));
  await mapLimit(leases, LEASE_GRANT_CONCURRENCY, opts.signal, async (l) => {
    // An expired lease still gets a moment, so its keys come back as they were: ephemeral.
    const ttl = Math.max(1, Number(l.remainingTtl));
    try {
      await conn.client.leaseClient.leaseGrant({ ID: l.id, TTL: ttl });
    } catch (err) {
      // A re-run finds the lease from the first run: reuse it.
      if (!isLeaseExists(err)) throw explainEtcdError(err, ctx(`grant lease ${l.id} for`));
    }
  });
  result.leasesGranted = leases.length;

  const writer = new BatchWriter(conn, limits, 'write', scope, opts.signal);
  result.writer = writer.stats;
  const fail = async (err: unknown): Promise<never> => {
    await writer.settle();
    let cause = err instanceof ShieldError ? err : explainEtcdError(err, ctx('write'));
    if (opts.signal?.aborted && !(cause instanceof CancelledError)) cause = new CancelledError('stopped by a signal', undefined, { cause });
    throw new RestoreInterruptedError(cause, writer.stats.puts, writer.stats.deletes);
  };

  try {
    opts.onPhase?.('writing keys');
    // The source re-checks what it reads, so data changed since step 1 stops before step 3.
    await source.records(
      scope,
      async (puts) => {
        for (const p of puts) {
          const wait = writer.put(p.key, p.value, p.lease);
          if (wait) await wait;
        }
        opts.onProgress?.(writer.stats.puts, archive.inScope);
      },
      opts.signal,
    );
    await writer.flush();
    result.written = writer.stats.puts;

    // Every key just written exists (keys are unique in a verified archive);
    // if they are all the scope holds, nothing is stale and the scan is skipped.
    if (opts.overwrite && (await countKeys(conn, scope)).count !== writer.stats.puts) {
      opts.onPhase?.('removing keys the archive does not hold');
      const stale = BigInt(startRevision);
      for await (const page of readPages(conn, { prefix: scope, keysOnly: true, signal: opts.signal })) {
        const kvs = page.kvs;
        for (let i = 0; i < kvs.length; i++) {
          if (BigInt(kvs.int64(i, Int64Field.ModRevision)) <= stale) {
            const wait = writer.delete(kvs.key(i));
            if (wait) await wait;
          }
        }
      }
      await writer.flush();
      result.deleted = writer.stats.deletes;
    }
  } catch (err) {
    if (err instanceof RestoreInterruptedError) throw err;
    return fail(err);
  }
  if (opts.signal?.aborted) return fail(new CancelledError('stopped by a signal'));
  return result;
}
