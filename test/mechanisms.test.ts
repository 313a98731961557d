// The mechanisms behind flat memory and fast restore, asserted directly (the
// benchmark measures speed; these tests never assert timing).
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { backup } from '../src/backup/backup';
import { resolveConfig } from '../src/config/config';
import { connect, type Connection } from '../src/etcd/connect';
import { readPages } from '../src/etcd/pages';
import { Sink } from '../src/io/sink';
import { BatchWriter } from '../src/restore/writer';
import { startEtcd, type EtcdCluster } from './harness';

const KEYS = 3000;
const valueFor = (i: number) => Buffer.alloc(i % 97 === 0 ? 20_000 : 100 + ((i * 7919) % 900), i % 251);
const keyFor = (i: number) => Buffer.from(`/m/key-${String(i).padStart(6, '0')}`);

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
    let seen = 0;
    let pages = 0;
    let last: Buffer | undefined;
    for await (const page of readPages(conn, { prefix: '/m/', pageBytes: budget })) {
      pages++;
      assert.ok(page.bytes <= budget, `page ${pages} has ${page.bytes} bytes`);
      for (const kv of page.kvs) {
        if (last) assert.ok(Buffer.compare(last, kv.key) < 0, 'keys ascend without repeats');
        last = kv.key;
        seen++;
      }
    }
    assert.equal(seen, KEYS);
    assert.ok(pages > 10, `expected many pages, got ${pages}`);
  });

  test('large ranges: sampled boundaries bound each page, and every key still comes once, in order', async () => {
    let seen = 0;
    let samples = 0;
    let last: Buffer | undefined;
    for await (const page of readPages(conn, { prefix: '/m/', pageBytes: 64 * 1024, sampleAbovePages: 0, sampleStride: 50 })) {
      samples = page.samples;
      for (const kv of page.kvs) {
        if (last) assert.ok(Buffer.compare(last, kv.key) < 0, 'keys ascend without repeats');
        last = kv.key;
        seen++;
      }
    }
    assert.equal(seen, KEYS);
    assert.ok(samples >= 50, `expected about ${KEYS / 50} samples, got ${samples}`);
  });

  test('every page is read at the first page’s revision, whatever is written meanwhile', async () => {
    const revisions = new Set<string>();
    let n = 0;
    for await (const page of readPages(conn, { prefix: '/m/', pageBytes: 32 * 1024 })) {
      revisions.add(page.revision);
      for (const kv of page.kvs) assert.notEqual(kv.value.toString(), 'changed during the read');
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
