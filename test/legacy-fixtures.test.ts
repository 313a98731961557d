// Archives made by the original Go plugin (test/fixtures) restore into a real etcd, and
// `backup --format legacy` reproduces them byte for byte.
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Etcd3 } from 'etcd3';
import { expectCode, fixturesDir, runCli } from './cli';
import { startEtcd, type EtcdCluster } from './harness';

const FULL = path.join(fixturesDir, 'shield-go-sample.archive');
const CONFIG = path.join(fixturesDir, 'shield-go-sample-prefix-config.archive');

let etcd: EtcdCluster;
let client: Etcd3;
let full: Buffer;
let config: Buffer;


/** The fixture decoded independently of src/: [key, value] pairs in file order. */
function parseLegacy(data: Buffer): [Buffer, Buffer][] {
  const text = data.toString('latin1');
  assert.ok(text.endsWith('\n'));
  return text
    .slice(0, -1)
    .split('\n')
    .map((line) => {
      const [k, v, ...rest] = line.split(' : ');
      assert.equal(rest.length, 0, `fixture line ${JSON.stringify(line)}`);
      return [Buffer.from(k!, 'base64'), Buffer.from(v!, 'base64')];
    });
}

/** The whole keyspace as [key, value] pairs, ascending, with leases. */
async function keyspace(): Promise<{ key: Buffer; value: Buffer; lease: string }[]> {
  const r = await client.kv.range({ key: Buffer.from([0]), range_end: Buffer.from([0]) });
  return r.kvs.map((kv) => ({ key: kv.key, value: kv.value, lease: kv.lease }));
}

async function get(key: Buffer | string): Promise<Buffer | undefined> {
  const r = await client.kv.range({ key: Buffer.from(key as string) });
  return r.kvs[0]?.value;
}

async function wipe(): Promise<void> {
  await client.kv.deleteRange({ key: Buffer.from([0]), range_end: Buffer.from([0]) });
}

function assertHolds(actual: { key: Buffer; value: Buffer; lease: string }[], expected: [Buffer, Buffer][], what: string): void {
  const want = [...expected].sort((a, b) => Buffer.compare(a[0], b[0]));
  assert.deepEqual(
    actual.map((e) => [e.key.toString('hex'), e.value.toString('hex'), e.lease]),
    want.map(([k, v]) => [k.toString('hex'), v.toString('hex'), '0']),
    what,
  );
}

const restoreArgs = () => ['restore', '--endpoints', etcd.url];

before(async () => {
  full = fs.readFileSync(FULL);
  config = fs.readFileSync(CONFIG);
  etcd = await startEtcd();
  client = new Etcd3({ hosts: etcd.url });
});

after(async () => {
  client?.close();
  await etcd?.stop();
});

beforeEach(wipe);

test('the fixtures are what this file expects (47 and 3 lines, descending keys)', () => {
  const f = parseLegacy(full);
  const c = parseLegacy(config);
  assert.equal(f.length, 47);
  assert.equal(c.length, 3);
  for (const list of [f, c]) {
    for (let i = 1; i < list.length; i++) assert.ok(Buffer.compare(list[i - 1]![0], list[i]![0]) > 0, 'descending keys');
  }
});

test('verify accepts both fixtures as legacy archives', async () => {
  for (const [data, keys] of [[full, 47], [config, 3]] as const) {
    const r = await runCli(['verify', '--json'], { input: data });
    expectCode(r, 0, 'verify of a fixture');
    const s = JSON.parse(r.stdout.toString('utf8')) as { format: string; keys: number; revision: unknown };
    assert.equal(s.format, 'legacy');
    assert.equal(s.keys, keys);
    assert.equal(s.revision, null);
  }
});

test('the whole-keyspace fixture restores into an empty etcd, and backup --format legacy reproduces it byte for byte', async () => {
  const r = await runCli([...restoreArgs(), '--in', FULL]);
  expectCode(r, 0, 'restore of the whole-keyspace fixture');
  assertHolds(await keyspace(), parseLegacy(full), 'keyspace after restoring the fixture');

  const b = await runCli(['backup', '--endpoints', etcd.url, '--format', 'legacy']);
  expectCode(b, 0, 'legacy backup');
  assert.equal(b.stdout.length, full.length, 'same length as the fixture');
  assert.ok(b.stdout.equals(full), 'legacy backup differs from the original plugin\'s archive');

  // Through the native format and back, the legacy output is still identical.
  const native = await runCli(['backup', '--endpoints', etcd.url]);
  expectCode(native, 0, 'native backup');
  await wipe();
  expectCode(await runCli(restoreArgs(), { input: native.stdout }), 0, 'restore of the native backup');
  const again = await runCli(['backup', '--endpoints', etcd.url, '--format', 'legacy']);
  expectCode(again, 0, 'legacy backup after a native round trip');
  assert.ok(again.stdout.equals(full));
});

test('with prefix "/config", backup --format legacy reproduces the prefix fixture byte for byte', async () => {
  expectCode(await runCli([...restoreArgs(), '--in', FULL]), 0, 'restore of the whole-keyspace fixture');
  const b = await runCli(['backup', '--endpoints', etcd.url, '--format', 'legacy', '--prefix', '/config']);
  expectCode(b, 0, 'legacy backup with prefix /config');
  assert.equal(b.stdout.toString('latin1'), config.toString('latin1'));
  assert.ok(b.stdout.equals(config));

  // The prefix fixture on its own, restored through the SHIELD face into an empty etcd.
  await wipe();
  const s = await runCli(['restore', '-e', JSON.stringify({ url: etcd.url, prefix: '/config' })], { input: config });
  expectCode(s, 0, 'restore -e of the prefix fixture');
  assertHolds(await keyspace(), parseLegacy(config), 'keyspace after restoring the prefix fixture');
  const shield = await runCli(['backup', '--endpoints', etcd.url, '--format', 'legacy', '--prefix', '/config']);
  expectCode(shield, 0, 'legacy backup');
  assert.ok(shield.stdout.equals(config));
});

test('the tricky keys come back exactly: binary value, empty value, non-UTF-8 key, newline in a value', async () => {
  const r = await runCli(restoreArgs(), { input: full });
  expectCode(r, 0, 'restore from stdin');
  assert.deepEqual(await get('/service/bin'), Buffer.from([0x00, 0x01, 0x02, 0xff, 0xfe, 0x80]));
  const empty = await client.kv.range({ key: Buffer.from('/service/db/empty') });
  assert.equal(empty.kvs.length, 1, 'a key with an empty value exists');
  assert.equal(empty.kvs[0]!.value.length, 0);
  assert.equal((await get(Buffer.from([0x2f, 0x72, 0x61, 0x77, 0xc3, 0x28])))?.toString(), 'invalid utf8 key');
  assert.equal((await get('/config/multi'))?.toString(), 'line one\nline two : with colon');
  assert.equal((await get('/config/greeting'))?.toString('utf8'), 'héllo wörld ✓');
  assert.equal((await get('/configuration'))?.toString(), 'not under /config/ but shares the string prefix /config');
  assert.ok((await keyspace()).every((e) => e.lease === '0'));
});

test('prefix "/config" is a plain string prefix: it takes /configuration, "/config/" does not', async () => {
  const withConfig = await runCli([...restoreArgs(), '--prefix', '/config'], { input: full });
  expectCode(withConfig, 0, 'restore with prefix /config');
  assert.deepEqual(
    (await keyspace()).map((e) => e.key.toString()),
    ['/config/greeting', '/config/multi', '/configuration'],
  );
  await wipe();
  const withSlash = await runCli([...restoreArgs(), '--prefix', '/config/'], { input: full });
  expectCode(withSlash, 0, 'restore with prefix /config/');
  assert.deepEqual((await keyspace()).map((e) => e.key.toString()), ['/config/greeting', '/config/multi']);
});

test('overwrite with prefix "/config" replaces the keys under it and leaves the rest', async () => {
  await client.kv.put({ key: Buffer.from('/config/stale'), value: Buffer.from('old') });
  await client.kv.put({ key: Buffer.from('/configX'), value: Buffer.from('string-prefix match') });
  await client.kv.put({ key: Buffer.from('/config/multi'), value: Buffer.from('changed') });
  await client.kv.put({ key: Buffer.from('/conf'), value: Buffer.from('outside') });
  await client.kv.put({ key: Buffer.from('/service/keep'), value: Buffer.from('outside') });
  const r = await runCli(['restore', '-e', JSON.stringify({ url: etcd.url, prefix: '/config', overwrite: 'true' })], { input: config });
  expectCode(r, 0, 'overwrite restore of the prefix fixture');
  assertHolds(
    await keyspace(),
    [...parseLegacy(config), [Buffer.from('/conf'), Buffer.from('outside')], [Buffer.from('/service/keep'), Buffer.from('outside')]],
    'keyspace after an overwrite restore',
  );
});
