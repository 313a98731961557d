import type { IRequestOp } from 'etcd3';
import { scanArchive } from '../archive/read';
import { hasPrefix } from '../archive/keys';
import type { KeyRecord } from '../archive/types';
import type { Connection } from '../etcd/connect';
import { explainEtcdError } from '../etcd/explain';
import { countKeys } from '../etcd/pages';

export interface RestorePlan {
  add: number;
  update: number;
  unchanged: number;
  /** Keys in scope that the archive lacks: deleted with overwrite, left alone without. */
  extra: number;
  /** A few keys of each kind, for the report. */
  samples: { add: string[]; update: string[] };
}

const LOOKUP_BATCH = 128;
const SAMPLES = 5;

/**
 * What a restore would change, without changing anything: looks each archive
 * key up in batches of range operations inside read-only transactions.
 */
export async function planRestore(
  conn: Connection,
  path: string,
  scope: string,
  signal?: AbortSignal,
  revision?: string,
): Promise<RestorePlan> {
  const plan: RestorePlan = { add: 0, update: 0, unchanged: 0, extra: 0, samples: { add: [], update: [] } };
  const scopeKey = Buffer.from(scope);
  const ctx = { config: conn.config, action: 'read', prefix: scope };
  let batch: KeyRecord[] = [];

  const lookUp = async () => {
    const records = batch;
    batch = [];
    if (records.length === 0) return;
    const success: IRequestOp[] = records.map((r) => ({ request_range: { key: r.key } }));
    const res = await conn.client.kv.txn({ compare: [], success, failure: [] }).catch((err: unknown) => {
      throw explainEtcdError(err, ctx);
    });
    res.responses.forEach((op, i) => {
      const r = records[i]!;
      const current = op.response_range.kvs[0];
      const name = r.key.toString('utf8');
      if (!current) {
        plan.add++;
        if (plan.samples.add.length < SAMPLES) plan.samples.add.push(name);
      } else if (!current.value.equals(r.value) || (r.lease !== '0') !== (current.lease !== '0')) {
        plan.update++;
        if (plan.samples.update.length < SAMPLES) plan.samples.update.push(name);
      } else {
        plan.unchanged++;
      }
    });
  };

  await scanArchive(
    path,
    async (items) => {
      for (const item of items) {
        if (item.kind !== 'record' || !hasPrefix(item.record.key, scopeKey)) continue;
        batch.push(item.record);
        if (batch.length >= LOOKUP_BATCH) await lookUp();
      }
    },
    signal,
    undefined,
    revision,
  );
  await lookUp();

  plan.extra = (await countKeys(conn, scope)).count - plan.update - plan.unchanged;
  return plan;
}
