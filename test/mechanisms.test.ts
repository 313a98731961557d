// The mechanisms behind flat memory and fast restore, asserted directly (the
// benchmark measures speed; these tests never assert timing).
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { backup } from '../src/backup/backup';
import { resolveConfig } from '../src/config/config';
import { connect, type Connection } from '../src/etcd/connect';
import { plannedPages, prefixRange, readPages, type Page, type RangeFetch } from '../src/etcd/pages';
import { range } from '../src/etcd/range';
import { Int64Field } from '../src/etcd/range-codec';
import { Sink } from '../src/io/sink';
import { BatchWriter } from '../src/restore/writer';
import { distinctSorted } from './etcd-data';
import { startEtcd, type EtcdCluster } from './harness';

const KEYS = 3000;
const valueFor = (i: number) => Buffer.alloc(i % 97 === 0 ? 20_000 : 100 + ((i * 7919) % 900), i % 251);
const keyFor = (i: number) => Buffer.from(`/m/key-${String(i).padStart(6, '0')}`);

/** Checks that pages, taken in turn, hold strictly ascending keys; counts them. */
function keyOrder(): { check(page: Page): void; seen(): number } {
  let last: Buffer | undefined;
  let seen = 0;
  return {
    check(page) {
      for (let i = 0; i < page.kvs.length; i++) {
        const key = page.kvs.key(i);
        if (last) assert.ok(Buffer.compare(last, key) < 0, 'keys ascend without repeats');
        last = key;
        seen++;
      }
    },
    seen: () => seen,
  };
}

describe('mechanisms', () => {
  let cluster: EtcdCluster;
  let conn: Connection;
  let dir: string;

  before(async () => {
    cluster = await startEtcd();
    conn = connect(resolveConfig({ url: cluster.url }).config);
    dir = mkdtempSync(join(tmpdir(), 'etcd-shield-mech-'));
    const seed = new BatchWriter(conn, { maxOps: 128, maxBytes: 1 << 20, concurrency: 4 }, 'write', '');
    for (let i = 0; i < KEYS; i++) await seed.put(keyFor(i), valueFor(i), '0');
    await seed.flush();
  });
  after(async () => {
    conn?.close();
    await cluster?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('pages stay within the byte budget and cover every key once, in order', async () => {
    const budget = 128 * 1024;
    let pages = 0;
    const order = keyOrder();
    for await (const page of readPages(conn, { prefix: '/m/', pageBytes: budget })) {
      pages++;
      assert.ok(page.bytes <= budget, `page ${pages} has ${page.bytes} bytes`);
      order.check(page);
    }
    assert.equal(order.seen(), KEYS);
    assert.ok(pages > 10, `expected many pages, got ${pages}`);
  });

  test('large ranges: guessed page ends bound the requests, and every key still comes once, in order', async () => {
    // The planner's own Ranges, sent to etcd as readPages sends them, with what each asked and what etcd counted.
    const prefixEnd = prefixRange('/m/').range_end;
    let requests = 0;
    let bounded = 0;
    let walked = 0;
    const fetch: RangeFetch = async (key, rangeEnd, limit, revision) => {
      const reply = await range(conn, { key, rangeEnd, limit, revision });
      requests++;
      if (!rangeEnd.equals(prefixEnd)) bounded++;
      // etcd counts (and walks) every key of [key, rangeEnd), whatever the limit.
      walked += reply.count;
      return reply;
    };
    const order = keyOrder();
    for await (const page of plannedPages(fetch, { prefix: '/m/', pageBytes: 64 * 1024 })) order.check(page);
    assert.equal(order.seen(), KEYS);
    assert.ok(requests > 20, `expected many requests, got ${requests}`);
    assert.ok(bounded >= requests - 3, `expected nearly every request to have a guessed end, got ${bounded} of ${requests}`);
    // Open ends would walk about KEYS * requests / 2 entries.
    assert.ok(walked <= 8 * KEYS, `etcd walked ${walked} index entries for ${KEYS} keys in ${requests} requests`);
  });

  test('a lone large value drops the limit for one request only; every key still comes once, in order', async () => {
    const prefix = '/lone/';
    const small = Buffer.alloc(200, 3);
    const big = Buffer.alloc(300_000, 9);
    const keys = Array.from({ length: 8000 }, (_, i) => Buffer.from(`${prefix}${String(i).padStart(5, '0')}`));
    const bigAt = new Set([3000, 6000]);
    const writer = new BatchWriter(conn, { maxOps: 128, maxBytes: 1 << 20, concurrency: 4 }, 'write', '');
    for (let i = 0; i < keys.length; i++) await writer.put(keys[i]!, bigAt.has(i) ? big : small, '0');
    await writer.flush();
    const budget = 64 * 1024;
    const sent: { limit: number; largest: number }[] = [];
    const fetch: RangeFetch = async (key, rangeEnd, limit, revision) => {
      const reply = await range(conn, { key, rangeEnd, limit, revision });
      sent.push({ limit, largest: reply.kvs.largest });
      return reply;
    };
    const got: Buffer[] = [];
    for await (const page of plannedPages(fetch, { prefix, pageBytes: budget })) for (let i = 0; i < page.kvs.length; i++) got.push(Buffer.from(page.kvs.key(i)));
    assert.deepEqual(got, keys, 'every key once, in order');
    // The case under test arose: pages held values larger than the whole budget.
    assert.equal(sent.filter((r) => r.largest > budget).length, bigAt.size);
    // Each cost at most one request below the usual limit (without the probe, four pages of one key, then a ramp).
    const usual = Math.max(...sent.map((r) => r.limit));
    const firstUsual = sent.findIndex((r) => r.limit === usual);
    const below = sent.slice(firstUsual).filter((r) => r.limit < usual).length;
    assert.ok(below <= bigAt.size, `limits: ${sent.map((r) => r.limit).join(',')}`);
    await conn.client.delete().prefix(prefix);
  });

  test('guessed page ends: keys of every shape come once, in order, in a bounded number of requests', async () => {
    const shapes: Record<string, Buffer[]> = {
      counter: Array.from({ length: 1500 }, (_, i) => Buffer.from(`key${i}`)),
      dirs: Array.from({ length: 1500 }, (_, i) => Buffer.from(`ns-${String(i % 12).padStart(2, '0')}/obj-${String(i).padStart(8, '0')}`)),
      bytes: distinctSorted(Array.from({ length: 1500 }, (_, i) => createHash('sha256').update(String(i)).digest().subarray(0, 1 + (i % 9)))),
      clumps: Array.from({ length: 1500 }, (_, i) => Buffer.from(`${i % 3 === 0 ? 'a' : '\xff\xff'}${String(i).padStart(6, '0')}`, 'latin1')),
    };
    const value = Buffer.alloc(200, 7);
    const writer = new BatchWriter(conn, { maxOps: 128, maxBytes: 1 << 20, concurrency: 4 }, 'write', '');
    for (const [shape, keys] of Object.entries(shapes)) for (const k of keys) await writer.put(Buffer.concat([Buffer.from(`/shape/${shape}/`), k]), value, '0');
    await writer.flush();
    const budget = 16 * 1024;
    for (const [shape, keys] of Object.entries(shapes)) {
      const prefix = `/shape/${shape}/`;
      const want = keys.map((k) => Buffer.concat([Buffer.from(prefix), k])).sort(Buffer.compare);
      const got: Buffer[] = [];
      let requests = 0;
      for await (const page of readPages(conn, { prefix, pageBytes: budget })) {
        requests++;
        for (let i = 0; i < page.kvs.length; i++) got.push(Buffer.from(page.kvs.key(i)));
      }
      assert.deepEqual(got, want, `${shape}: every key once, in order`);
      // A page holds about budget / 230 bytes = 70 keys; guesses may cost some short or empty requests, not many.
      const fewest = Math.ceil(want.length / Math.floor(budget / (value.length + 40)));
      assert.ok(requests <= 4 * fewest + 10, `${shape}: ${requests} requests for ${want.length} keys (${fewest} full pages)`);
    }
  });

  test('pages decoded from raw Range replies match what etcd3 decodes, field by field', async () => {
    const lease = conn.client.lease(600, { autoKeepAlive: false });
    await lease.put('/raw/leased').value('with a lease');
    await conn.client.put('/raw/plain').value(Buffer.from([0, 255, 10]));
    await conn.client.put('/raw/plain').value('twice');
    await conn.client.put('/raw/empty').value('');
    try {
      const expected = await conn.client.kv.range({ key: Buffer.from('/raw/'), range_end: Buffer.from('/raw0') });
      const pages = [];
      for await (const page of readPages(conn, { prefix: '/raw/' })) pages.push(page);
      assert.equal(pages.length, 1);
      const { kvs, revision, clusterId, memberId, total } = pages[0]!;
      assert.deepEqual(
        { revision, clusterId, memberId, total },
        { revision: expected.header.revision, clusterId: expected.header.cluster_id, memberId: expected.header.member_id, total: 3 },
      );
      const fields = [Int64Field.CreateRevision, Int64Field.ModRevision, Int64Field.Version, Int64Field.Lease];
      const got = Array.from({ length: kvs.length }, (_, i) => [kvs.key(i), kvs.value(i), ...fields.map((f) => kvs.int64(i, f)), kvs.hasLease(i)]);
      const want = expected.kvs.map((kv) => [kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease, kv.lease !== '0']);
      assert.deepEqual(got, want);
      // etcd puts 16 bits of the member id on top of lease ids, so the int64 path above 2^53 was taken.
      assert.ok(BigInt(await lease.grant()) > 2n ** 53n);
    } finally {
      await lease.revoke();
      await conn.client.delete().prefix('/raw/');
    }
  });

  test('every page is read at the first page’s revision, whatever is written meanwhile', async () => {
    const revisions = new Set<string>();
    let n = 0;
    for await (const page of readPages(conn, { prefix: '/m/', pageBytes: 32 * 1024 })) {
      revisions.add(page.revision);
      for (let i = 0; i < page.kvs.length; i++) assert.notEqual(page.kvs.value(i).toString(), 'changed during the read');
      n += page.kvs.length;
      // Change a key the reader has not reached yet: the pinned read must not see it.
      if (n < KEYS - 10) await conn.client.put(keyFor(KEYS - 1)).value('changed during the read');
    }
    assert.equal(revisions.size, 1);
    assert.equal(n, KEYS);
    await conn.client.put(keyFor(KEYS - 1)).value(valueFor(KEYS - 1));
  });

  test('restore keeps a bounded number of transactions in flight', async () => {
    const writer = new BatchWriter(conn, { maxOps: 16, maxBytes: 1 << 20, concurrency: 3 }, 'write', '/w/');
    for (let i = 0; i < 2000; i++) await writer.put(Buffer.from(`/w/${i}`), Buffer.from('x'), '0');
    await writer.flush();
    assert.equal(writer.stats.puts, 2000);
    assert.ok(writer.stats.peakInFlight <= 3, `peak ${writer.stats.peakInFlight}`);
    assert.ok(writer.stats.peakInFlight >= 2, 'transactions overlap');
    assert.ok(writer.stats.transactions >= 2000 / 16);
  });

  test('transactions respect the byte budget as well as the op count', async () => {
    const writer = new BatchWriter(conn, { maxOps: 128, maxBytes: 100_000, concurrency: 2 }, 'write', '/big/');
    for (let i = 0; i < 40; i++) await writer.put(Buffer.from(`/big/${i}`), Buffer.alloc(30_000, 1), '0');
    await writer.flush();
    // 30 kB each under a 100 kB budget: at most 3 per transaction.
    assert.ok(writer.stats.transactions >= Math.ceil(40 / 3), `transactions ${writer.stats.transactions}`);
  });

  test('backpressure: a slow reader holds backup back instead of filling memory', async () => {
    let buffered = 0;
    let maxBuffered = 0;
    const highWaterMark = 64 * 1024;
    const slow = new Writable({
      highWaterMark,
      write(chunk: Buffer, _enc, done) {
        buffered += chunk.length;
        maxBuffered = Math.max(maxBuffered, slow.writableLength);
        setTimeout(() => {
          buffered -= chunk.length;
          done();
        }, 2);
      },
    });
    const sink = new Sink(slow, 'a slow test reader');
    const summary = await backup(conn, sink, { prefix: '/m/', format: 'etcd-shield', pageBytes: 32 * 1024 });
    await sink.end();
    assert.equal(summary.keys, KEYS);
    // Never more than the stream's mark plus one encoded page waiting to be written.
    assert.ok(maxBuffered <= highWaterMark + 32 * 1024 + 20_100, `the writer queued ${maxBuffered} bytes`);
    assert.equal(buffered, 0);
    writeFileSync(join(dir, 'done'), '');
  });
});
