// The read floor for a Node etcd3 client: a paged Range over the whole
// keyspace pinned at one revision, the next page requested before the
// current one is looked at, and nothing done with the data. What is left of
// etcd-shield backup's time above this is ours (encoding, hashing, writing).
//
//   node dist/bench/reader.js --endpoints URL [--limit 2000] [--serializable] [--bounded]
//
// --bounded: each page asks for [after the last key, a range_end guessed
// about one page further from the density of the page before]
// (src/etcd/boundaries.ts), so etcd 3.4 walks its index over about one page
// per request instead of over everything after the start key.
import { after, KeyDensity } from '../src/etcd/boundaries';
import { client } from './loader';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

const ZERO = Buffer.from([0]);

async function main(): Promise<void> {
  const etcd = client(arg('endpoints', 'http://127.0.0.1:2379'));
  const limit = Number(arg('limit', '2000'));
  // Later pages are pinned at the first page's revision, so a serializable read returns the same data.
  const serializable = process.argv.includes('--serializable');
  const bounded = process.argv.includes('--bounded');
  let r = await etcd.kv.range({ key: ZERO, range_end: ZERO, limit });
  const revision = r.header.revision;
  let keys = 0;
  let bytes = 0;
  const density = new KeyDensity();
  let from: Buffer = ZERO;
  let end: Buffer = ZERO;
  let start: Buffer | undefined = r.more && r.kvs.length ? after(r.kvs[r.kvs.length - 1]!.key) : undefined;
  for (;;) {
    const full = r.more && r.kvs.length > 0;
    density.observe(from, end, { length: r.kvs.length, key: (i) => r.kvs[i]!.key }, full);
    let next: ReturnType<typeof etcd.kv.range> | undefined;
    if (start) {
      from = start;
      if (!full || end === ZERO) end = (bounded && density.guessEnd(start, ZERO, limit)) || ZERO;
      next = etcd.kv.range({ key: start, range_end: end, limit, revision, serializable });
    }
    for (const kv of r.kvs) bytes += kv.key.length + kv.value.length;
    keys += r.kvs.length;
    if (!next) break;
    r = await next;
    // More before `end`: go on after the last key; none: go on from `end`, unless that was the end.
    start = r.more && r.kvs.length ? after(r.kvs[r.kvs.length - 1]!.key) : end !== ZERO ? end : undefined;
  }
  process.stderr.write(`reader: ${keys} keys, ${bytes} bytes at revision ${revision}${bounded ? ' (guessed page ends)' : ''}\n`);
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
