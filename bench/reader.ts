// The read floor for a Node etcd3 client: a paged Range over the whole
// keyspace pinned at one revision, the next page requested before the
// current one is looked at, and nothing done with the data. What is left of
// etcd-shield backup's time above this is ours (encoding, hashing, writing).
//
//   node dist/bench/reader.js --endpoints URL [--limit 2000] [--serializable] [--bounded [--stride 1000] [--keys-limit 20000]]
//
// --bounded: first a keys-only pass (pages of --keys-limit keys) keeps every
// stride-th key; then each data page asks for [after the last key, a
// boundary about one page further), so etcd 3.4 walks its index over about
// one page per request instead of over everything after the start key.
import type { Etcd3 } from 'etcd3';
import { segmentEnd } from '../src/etcd/samples';
import { client } from './loader';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

const ZERO = Buffer.from([0]);
const after = (k: Buffer) => Buffer.concat([k, ZERO]);

/** Every stride-th key after `from`, at the revision, from a keys-only pass. */
export async function sampleKeys(etcd: Etcd3, from: Buffer, revision: string, stride: number, limit: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  let seen = 0;
  let start: Buffer | undefined = from;
  while (start) {
    const r = await etcd.kv.range({ key: start, range_end: ZERO, limit, revision, keys_only: true });
    for (const kv of r.kvs) if (++seen % stride === 0) out.push(Buffer.from(kv.key));
    start = r.more && r.kvs.length ? after(r.kvs[r.kvs.length - 1]!.key) : undefined;
  }
  return out;
}

async function main(): Promise<void> {
  const etcd = client(arg('endpoints', 'http://127.0.0.1:2379'));
  const limit = Number(arg('limit', '2000'));
  const stride = Number(arg('stride', '1000'));
  // Later pages are pinned at the first page's revision, so a serializable read returns the same data.
  const serializable = process.argv.includes('--serializable');
  let r = await etcd.kv.range({ key: ZERO, range_end: ZERO, limit });
  const revision = r.header.revision;
  const boundaries =
    process.argv.includes('--bounded') && r.more && r.kvs.length
      ? await sampleKeys(etcd, after(r.kvs[r.kvs.length - 1]!.key), revision, stride, Number(arg('keys-limit', '20000')))
      : [];
  let keys = 0;
  let bytes = 0;
  let start: Buffer | undefined = r.more && r.kvs.length ? after(r.kvs[r.kvs.length - 1]!.key) : undefined;
  for (;;) {
    let next: ReturnType<typeof etcd.kv.range> | undefined;
    let end: Buffer = ZERO;
    if (start) {
      end = segmentEnd(boundaries, start, limit, stride) ?? ZERO;
      next = etcd.kv.range({ key: start, range_end: end, limit, revision, serializable });
    }
    for (const kv of r.kvs) bytes += kv.key.length + kv.value.length;
    keys += r.kvs.length;
    if (!next) break;
    r = await next;
    // More before `end`: go on after the last key; none: go on from `end`, unless that was the end.
    start = r.more && r.kvs.length ? after(r.kvs[r.kvs.length - 1]!.key) : end !== ZERO ? end : undefined;
  }
  process.stderr.write(`reader: ${keys} keys, ${bytes} bytes at revision ${revision}${boundaries.length ? ` (${boundaries.length} boundaries)` : ''}\n`);
  etcd.close();
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`reader: ${(err as Error)?.stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
