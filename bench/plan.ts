// The page planner (src/etcd/pages.ts, boundaries.ts) against a model of
// etcd 3.4's index, per key layout: how many requests a backup makes, how
// many index entries etcd walks for them (it walks from a request's start to
// its range_end whatever the limit), and how often the pipeline ran dry. No
// etcd, no timing: the same numbers on every run, to compare planners.
//
//   node dist/bench/plan.js [--keys 100000] [--layouts bench,k8s,uuid,large] [--seed 1]
//   PLAN_TRACE=1 also prints every request: its span, limit, and what etcd would return and count
import { DEFAULT_PAGE_BYTES, plannedPages } from '../src/etcd/pages';
import type { KeyValues, RangeReply } from '../src/etcd/range-codec';
import { Dataset, LAYOUTS, parseLayout } from './data';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

export interface PlanStats {
  requests: number;
  /** Index entries etcd walked, over all requests. */
  walked: number;
  empty: number;
  /** Requests sent when none was in flight ahead of the one the caller waits for: etcd idles meanwhile. */
  dry: number;
  keys: number;
  /** The largest page, and the most bytes in four pages in a row (those in flight at once, about). */
  maxPage: number;
  maxFour: number;
}

/** etcd's index as a sorted key list: Range with count and limit, and what each request costs it. */
export async function simulate(keys: Buffer[], sizes: number[], pageBytes = DEFAULT_PAGE_BYTES): Promise<PlanStats> {
  const lower = (k: Buffer) => {
    let lo = 0;
    let hi = keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (Buffer.compare(keys[mid]!, k) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
  const stats: PlanStats = { requests: 0, walked: 0, empty: 0, dry: 0, keys: 0, maxPage: 0, maxFour: 0 };
  const recent: number[] = [];
  let yielded = 0;
  const fetch = async (key: Buffer, end: Buffer, limit: number): Promise<RangeReply> => {
    if (stats.requests > 0 && stats.requests - (yielded + 1) <= 0) stats.dry++;
    stats.requests++;
    const lo = lower(key);
    const hi = end.length === 1 && end[0] === 0 ? keys.length : lower(end);
    const count = Math.max(0, hi - lo);
    const n = limit > 0 ? Math.min(limit, count) : count;
    stats.walked += count;
    if (n === 0) stats.empty++;
    if (process.env.PLAN_TRACE) process.stderr.write(`${key.toString('latin1')} .. ${end.toString('latin1')} limit ${limit}: ${n} of ${count}\n`);
    let largest = 0;
    let bytes = 0;
    for (let i = lo; i < lo + n; i++) {
      largest = Math.max(largest, sizes[i]!);
      bytes += sizes[i]!;
    }
    const kvs = { length: n, key: (i: number) => keys[lo + i]!, largest, bytes } as unknown as KeyValues;
    return { revision: '1', clusterId: '1', memberId: '1', kvs, more: count > n, count };
  };
  let last: Buffer | undefined;
  for await (const page of plannedPages(fetch, { prefix: '', pageBytes })) {
    yielded++;
    for (let i = 0; i < page.kvs.length; i++) {
      const k = page.kvs.key(i);
      if (last && Buffer.compare(last, k) >= 0) throw new Error('keys out of order');
      last = k;
    }
    stats.keys += page.kvs.length;
    stats.maxPage = Math.max(stats.maxPage, page.bytes);
    recent.push(page.bytes);
    if (recent.length > 4) recent.shift();
    stats.maxFour = Math.max(stats.maxFour, recent.reduce((a, b) => a + b, 0));
  }
  if (stats.keys !== keys.length) throw new Error(`read ${stats.keys} keys of ${keys.length}`);
  return stats;
}

export function layoutKeys(data: Dataset): { keys: Buffer[]; sizes: number[] } {
  const items = Array.from({ length: data.spec.keys }, (_, i) => ({ key: data.key(i), size: data.key(i).length + data.valueLength(i) }));
  items.sort((a, b) => Buffer.compare(a.key, b.key));
  return { keys: items.map((x) => x.key), sizes: items.map((x) => x.size) };
}

async function main(): Promise<void> {
  const n = Number(arg('keys', '100000'));
  const seed = Number(arg('seed', '1'));
  const layouts = arg('layouts', LAYOUTS.join(',')).split(',').map(parseLayout);
  process.stdout.write(`| layout | keys | requests | empty | dry | index entries walked per key | largest page MB | largest 4 pages MB |\n|---|---:|---:|---:|---:|---:|---:|---:|\n`);
  for (const layout of layouts) {
    const { keys, sizes } = layoutKeys(new Dataset({ keys: n, seed, layout }));
    const s = await simulate(keys, sizes);
    process.stdout.write(`| ${layout} | ${n} | ${s.requests} | ${s.empty} | ${s.dry} | ${(s.walked / n).toFixed(2)} | ${(s.maxPage / 2 ** 20).toFixed(1)} | ${(s.maxFour / 2 ** 20).toFixed(1)} |\n`);
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`plan: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  });
}
