import type { Etcd3 } from 'etcd3';

/** The distinct keys, in etcd's order (byte order). */
export const distinctSorted = (keys: Buffer[]): Buffer[] => [...new Map(keys.map((k) => [k.toString('hex'), k])).values()].sort(Buffer.compare);

/** Seeds etcd fast: transactions of 128 puts, 8 at a time. */
export async function putMany(client: Etcd3, records: { key: Buffer; value: Buffer }[]): Promise<void> {
  const batches: { key: Buffer; value: Buffer }[][] = [];
  for (let i = 0; i < records.length; i += 128) batches.push(records.slice(i, i + 128));
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < batches.length) {
        const b = batches[next++]!;
        await client.kv.txn({ compare: [], success: b.map((r) => ({ request_put: { key: r.key, value: r.value } })), failure: [] });
      }
    }),
  );
}
