// The write floor: transactions of 128 unconditional puts, 8 in flight, no
// checks, the same data (and leases) etcd-shield restores. Also used
// in-process by bench.ts to seed the source etcd.
//
//   node dist/bench/loader.js --endpoints URL --keys N [--seed S] [--layout bench|k8s|uuid|large] [--ops 128] [--in-flight 8]
import { Etcd3, IRequestOp } from 'etcd3';
import { Dataset, DatasetSpec, LEASE_TTL, parseLayout } from './data';

export interface LoadOptions {
  ops: number;
  inFlight: number;
}

export const LOADER_DEFAULTS: LoadOptions = { ops: 128, inFlight: 8 };

export function client(endpoints: string): Etcd3 {
  return new Etcd3({
    hosts: endpoints.split(','),
    grpcOptions: { 'grpc.max_receive_message_length': 512 * 1024 * 1024, 'grpc.max_send_message_length': 512 * 1024 * 1024 },
  });
}

/**
 * Grants the dataset's leases (with their fixed ids), then sends one
 * transaction per `opts.ops` keys, `opts.inFlight` at a time. Returns the
 * number of transactions.
 */
async function sendAll(
  etcd: Etcd3,
  spec: DatasetSpec,
  opts: LoadOptions,
  send: (items: ReturnType<Dataset['item']>[]) => Promise<unknown>,
): Promise<number> {
  const data = new Dataset(spec);
  await Promise.all(data.usedLeases().map((ID) => etcd.leaseClient.leaseGrant({ ID, TTL: LEASE_TTL })));
  const inFlight = new Set<Promise<unknown>>();
  let failure: unknown;
  let txns = 0;
  for (let i = 0; i < spec.keys; ) {
    const items = [];
    for (const end = Math.min(spec.keys, i + opts.ops); i < end; i++) items.push(data.item(i));
    while (inFlight.size >= opts.inFlight) await Promise.race(inFlight);
    if (failure) throw failure;
    const p: Promise<unknown> = send(items)
      .catch((err: unknown) => (failure ??= err))
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
    txns++;
  }
  await Promise.all(inFlight);
  if (failure) throw failure;
  return txns;
}

/** Puts every key through the etcd3 client's own transaction encoding. */
export async function load(etcd: Etcd3, spec: DatasetSpec, opts: LoadOptions = LOADER_DEFAULTS): Promise<number> {
  return sendAll(etcd, spec, opts, (items) => {
    const success: IRequestOp[] = items.map(({ key, value, lease }) => ({
      request_put: lease === '0' ? { key, value } : { key, value, lease },
    }));
    return etcd.kv.txn({ compare: [], success, failure: [] });
  });
}

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : fallback;
  if (v === undefined) throw new Error(`loader: --${name} is required`);
  return v;
}

if (require.main === module) {
  const etcd = client(arg('endpoints'));
  const spec = { keys: Number(arg('keys')), seed: Number(arg('seed', '1')), layout: parseLayout(arg('layout', 'bench')) };
  load(etcd, spec, { ops: Number(arg('ops', '128')), inFlight: Number(arg('in-flight', '8')) })
    .then(() => {
      etcd.close();
      process.exit(0);
    })
    .catch((err: unknown) => {
      process.stderr.write(`loader: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exit(1);
    });
}
