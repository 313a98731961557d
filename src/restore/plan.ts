import type { IRequestOp } from 'etcd3';
import type { Connection } from '../etcd/connect';
import { explainEtcdError } from '../etcd/explain';
import { countKeys } from '../etcd/pages';
import type { Put, RecordSource } from './source';

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
 * What a restore would change, without changing anything: looks each key of
 * the source up in batches of range operations inside read-only transactions.
 */
export async function planRestore(conn: Connection, source: RecordSource, scope: string, signal?: AbortSignal): Promise<RestorePlan> {
  const plan: RestorePlan = { add: 0, update: 0, unchanged: 0, extra: 0, samples: { add: [], update: [] } };
  const ctx = { config: conn.config, action: 'read', prefix: scope };

  const lookUp = async (records: Put[]) => {
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

  // A batch's buffers are valid only until its callback returns, so each is looked up whole.
  await source.records(
    scope,
    async (puts) => {
      for (let from = 0; from < puts.length; from += LOOKUP_BATCH) await lookUp(puts.slice(from, from + LOOKUP_BATCH));
    },
    signal,
  );

  plan.extra = (await countKeys(conn, scope)).count - plan.update - plan.unchanged;
  return plan;
}
