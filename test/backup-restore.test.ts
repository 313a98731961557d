// Backup and restore through the real CLI against one real etcd, wiped between tests.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Etcd3 } from 'etcd3';
import { assertNoCrash, describeRun, expectCode, runCli, type CliResult } from './cli';
import { putMany } from './etcd-data';
import { startEtcd, type EtcdCluster } from './harness';
import type { VerifySummary } from 'etcd-shield';

const MAGIC = '#etcd-shield-archive v1\n';

interface Entry {
  key: string; // hex
  value: string; // hex
  lease: string;
  create: string;
  mod: string;
  version: string;
}
interface Dump {
  revision: string;
  kvs: Entry[];
  leases: string[];
}
type Content = { key: string; value: string; lease: string }[];

let etcd: EtcdCluster;
let client: Etcd3;
let tmp: string;


const b = (s: string | number[]) => (typeof s === 'string' ? Buffer.from(s) : Buffer.from(s));
const hex = (buf: Buffer) => buf.toString('hex');

/** Every key, value, lease and revision in the cluster, plus the store revision and the lease ids. */
async function dump(): Promise<Dump> {
  const r = await client.kv.range({ key: Buffer.from([0]), range_end: Buffer.from([0]) });
  const { leases } = await client.leaseClient.leaseLeases();
  return {
    revision: r.header.revision,
    kvs: r.kvs.map((kv) => ({
      key: hex(kv.key),
      value: hex(kv.value),
      lease: kv.lease,
      create: kv.create_revision,
      mod: kv.mod_revision,
      version: kv.version,
    })),
    leases: leases.map((l) => l.ID).sort(),
  };
}

/** What a restore is meant to reproduce: keys, values and leases. */
async function content(): Promise<Content> {
  return (await dump()).kvs.map(({ key, value, lease }) => ({ key, value, lease }));
}

/** Compares two key lists one key at a time, naming the first difference (a 10k-key diff is unreadable). */
function assertSameContent(actual: Content, expected: Content, what: string): void {
  const n = Math.min(actual.length, expected.length);
  for (let i = 0; i < n; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (a.key !== e.key || a.value !== e.value || a.lease !== e.lease) {
      assert.fail(
        `${what}: key #${i} differs: got key ${a.key} value ${a.value.slice(0, 80)} lease ${a.lease}, expected key ${e.key} value ${e.value.slice(0, 80)} lease ${e.lease}`,
      );
    }
  }
  assert.equal(actual.length, expected.length, `${what}: key count`);
}

const withoutLeases = (c: Content): Content => c.map((e) => ({ ...e, lease: '0' }));

async function put(key: Buffer | string, value: Buffer | string, lease?: string): Promise<void> {
  await client.kv.put({ key: b(key as string), value: typeof value === 'string' ? b(value) : value, ...(lease ? { lease } : {}) });
}


async function wipe(): Promise<void> {
  await client.kv.deleteRange({ key: Buffer.from([0]), range_end: Buffer.from([0]) });
  const { leases } = await client.leaseClient.leaseLeases();
  for (const l of leases) await client.leaseClient.leaseRevoke({ ID: l.ID });
}

async function grant(ttl: number): Promise<string> {
  return (await client.leaseClient.leaseGrant({ TTL: ttl, ID: '0' })).ID;
}

async function backup(args: string[] = []): Promise<Buffer> {
  const r = await runCli(['backup', '--endpoints', etcd.url, ...args]);
  expectCode(r, 0, `backup ${args.join(' ')}`);
  return r.stdout;
}

function restore(archive: Buffer | string, args: string[] = []): Promise<CliResult> {
  return runCli(['restore', '--endpoints', etcd.url, ...args], { input: archive });
}

async function restoreOk(archive: Buffer, args: string[] = []): Promise<CliResult> {
  const r = await restore(archive, args);
  expectCode(r, 0, `restore ${args.join(' ')}`);
  return r;
}

async function verifyJson(archive: Buffer): Promise<VerifySummary> {
  const r = await runCli(['verify', '--json'], { input: archive });
  expectCode(r, 0, 'verify --json');
  return JSON.parse(r.stdout.toString('utf8')) as VerifySummary;
}

before(async () => {
  etcd = await startEtcd();
  client = new Etcd3({
    hosts: etcd.url,
    grpcOptions: { 'grpc.max_receive_message_length': 256 * 1024 * 1024, 'grpc.max_send_message_length': 256 * 1024 * 1024 },
  });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-shield-br-'));
});

after(async () => {
  client?.close();
  await etcd?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

beforeEach(wipe);

describe('round trips', () => {
  test('an empty keyspace gives a non-empty archive that verifies and restores', async () => {
    const archive = await backup();
    assert.ok(archive.length > MAGIC.length, 'an empty backup must still write an archive');
    assert.equal(archive.subarray(0, MAGIC.length).toString('latin1'), MAGIC);
    const v = await verifyJson(archive);
    assert.equal(v.keys, 0);
    assert.equal(v.leases, 0);
    await restoreOk(archive);
    assert.deepEqual(await content(), []);

    // The SHIELD face too.
    const shield = await runCli(['backup', '-e', JSON.stringify({ url: etcd.url })]);
    expectCode(shield, 0, 'backup -e of an empty keyspace');
    assert.ok(shield.stdout.length > MAGIC.length);
    // Valid, but worth a warning: an empty backup is usually a mistyped prefix.
    assert.match(shield.stderr, /warning: etcd held no keys at revision \d+: the backup is empty/, describeRun(shield));

    // A prefix that matches nothing in a non-empty cluster.
    await put('/x', 'outside');
    const run = await runCli(['backup', '--endpoints', etcd.url, '--prefix', '/nothing/']);
    expectCode(run, 0, 'backup of a prefix with no keys');
    assert.match(run.stderr, /warning: no keys under the prefix "\/nothing\/" at revision \d+: the backup is empty; check the prefix/, describeRun(run));
    const none = run.stdout;
    assert.equal((await verifyJson(none)).keys, 0);
    await put('/nothing/a', 'will go');
    // An empty archive restored with overwrite empties its prefix, and only that.
    await restoreOk(none, ['--overwrite']);
    assert.deepEqual(await content(), [{ key: hex(b('/x')), value: hex(b('outside')), lease: '0' }]);
  });

  test('binary and non-UTF-8 keys and values, and empty values, round-trip exactly in both formats', async () => {
    const keys: Buffer[] = [
      b([0x00]),
      b([0x00, 0x00]),
      b([0x00, 0xff, 0x0a]),
      b([0x01, 0x02, 0xff]),
      b([0xc3, 0x28]), // invalid UTF-8
      b([0xff]),
      b([0xff, 0xff, 0xff]),
      b([0xed, 0xa0, 0x80]), // a UTF-16 surrogate, invalid in UTF-8
      b('/newline\nkey'),
      b('/sep : key'),
      b('/crlf\r\n'),
      b('/unicode/✓ü日本'),
      b(MAGIC.trim()), // a key that looks like the archive's first line
      b('/empty-value'),
    ];
    for (let i = 0; i < 20; i++) keys.push(Buffer.concat([b('/random/'), randomBytes(1 + (i % 40))]));
    const values: Buffer[] = [
      Buffer.alloc(0),
      b([0x00]),
      b([0xff, 0xfe, 0x80, 0x00, 0x0a]),
      b('line one\nline two : with colon\n'),
      randomBytes(5000),
    ];
    for (let i = 0; i < keys.length; i++) {
      await put(keys[i]!, keys[i]!.equals(b('/empty-value')) ? Buffer.alloc(0) : values[i % values.length]!);
    }
    const expected = await content();
    assert.equal(expected.length, keys.length);
    assert.ok(expected.some((e) => e.value === ''), 'an empty value is part of the data');

    for (const format of ['etcd-shield', 'legacy']) {
      const archive = await backup(['--format', format]);
      await wipe();
      const r = await restoreOk(archive);
      assertSameContent(await content(), expected, `${format} round trip`);
      if (format === 'legacy') assert.match(r.stderr, /legacy/);
    }
  });

  test('values near etcd request limit (1,000,000 and 1,400,000 bytes) round-trip', async () => {
    const big = [randomBytes(1_000_000), randomBytes(1_000_000), randomBytes(1_000_000), randomBytes(1_400_000)];
    for (let i = 0; i < big.length; i++) await put(`/big/${i}`, big[i]!);
    await put('/big/small', 'tiny');
    await put('/big/zz-empty', Buffer.alloc(0));
    const expected = await content();
    const archive = await backup();
    assert.ok(archive.length > 4_400_000);
    assert.equal((await verifyJson(archive)).keys, 6);
    await wipe();
    await restoreOk(archive);
    assertSameContent(await content(), expected, 'big values');
    // Restore over the same keys again (updates rather than creates).
    await restoreOk(archive, ['--overwrite']);
    assertSameContent(await content(), expected, 'big values, second restore');
  });

  test('10,500 keys round-trip exactly, compared key by key (native, and legacy over many small pages)', async () => {
    const n = 10_500;
    const entries: [Buffer, Buffer][] = [];
    for (let i = 0; i < n; i++) {
      const value = Buffer.concat([b(`value-${i}-`), randomBytes(i % 97)]);
      entries.push([b(`/bulk/${String(i).padStart(6, '0')}`), value]);
    }
    entries.push([b('/aaa-before'), b('x')], [b('/zzz-after'), b('y')]);
    await putMany(client, entries.map(([key, value]) => ({ key, value })));
    const expected = await content();
    assert.equal(expected.length, n + 2);

    const archive = await backup();
    const v = await verifyJson(archive);
    assert.equal(v.keys, n + 2);
    await wipe();
    const r = await restoreOk(archive);
    assert.match(r.stderr, new RegExp(`wrote ${n + 2} keys`));
    assertSameContent(await content(), expected, 'native 10k round trip');

    // Legacy, read in many small pages: the output must still be one descending list.
    const legacy = await backup(['--format', 'legacy', '--prefix', '/bulk/', '--page-bytes', '3000']);
    const lines = legacy.toString('latin1').split('\n');
    assert.equal(lines.pop(), '');
    assert.equal(lines.length, n);
    const keys = lines.map((l) => Buffer.from(l.slice(0, l.indexOf(' : ')), 'base64'));
    for (let i = 1; i < keys.length; i++) {
      assert.ok(Buffer.compare(keys[i - 1]!, keys[i]!) > 0, `legacy keys must descend: line ${i} ${keys[i - 1]} then ${keys[i]}`);
    }
    await wipe();
    await restoreOk(legacy);
    assertSameContent(await content(), expected.filter((e) => Buffer.from(e.key, 'hex').toString().startsWith('/bulk/')), 'legacy 10k round trip');
  });
});

describe('timeout is per request, not per run', () => {
  test('a backup and a restore that take longer than the timeout in total still succeed', async () => {
    // About 40 MB: reading or writing it all is many requests, each well inside 1 s.
    const entries: [Buffer, Buffer][] = [];
    const chunk = randomBytes(800_000);
    for (let i = 0; i < 50; i++) entries.push([b(`/slow/${String(i).padStart(3, '0')}`), Buffer.concat([b(`${i}:`), chunk])]);
    for (const [k, v] of entries) await client.kv.put({ key: k, value: v });
    const expected = await content();
    const r = await runCli(['backup', '-e', JSON.stringify({ url: etcd.url, timeout: '1' })]);
    expectCode(r, 0, 'backup with timeout 1');
    assert.equal((await verifyJson(r.stdout)).keys, 50);
    await wipe();
    const w = await runCli(['restore', '-e', JSON.stringify({ url: etcd.url, timeout: '1' })], { input: r.stdout });
    expectCode(w, 0, 'restore with timeout 1');
    assertSameContent(await content(), expected, 'after a restore with timeout 1');
  });
});

describe('prefixes', () => {
  const all = ['/ap', '/app', '/app/x', '/app/y/z', '/apple', '/apple/pie', '/b'];
  const keysNow = async () => (await content()).map((e) => Buffer.from(e.key, 'hex').toString());
  const valueOf = async (k: string) => {
    const r = await client.kv.range({ key: b(k) });
    return r.kvs[0]?.value.toString();
  };
  const seed = async () => {
    for (const k of all) await put(k, `v${k}`);
  };

  test('backup --prefix is a plain string prefix: /app takes /app itself and /apple, /app/ does not', async () => {
    await seed();
    const app = await backup(['--prefix', '/app']);
    const v = await verifyJson(app);
    assert.equal(v.prefix, '/app');
    assert.equal(v.keys, 5);
    const appSlash = await backup(['--prefix', '/app/']);
    assert.equal((await verifyJson(appSlash)).keys, 2);

    await wipe();
    await restoreOk(app);
    assert.deepEqual(await keysNow(), ['/app', '/app/x', '/app/y/z', '/apple', '/apple/pie']);
    await wipe();
    await restoreOk(appSlash);
    assert.deepEqual(await keysNow(), ['/app/x', '/app/y/z']);
  });

  test('restore --prefix narrows a whole-keyspace archive; overwrite stays inside it', async () => {
    await seed();
    const full = await backup();
    await wipe();
    await restoreOk(full, ['--prefix', '/apple']);
    assert.deepEqual(await keysNow(), ['/apple', '/apple/pie']);

    // Overwrite with prefix /app/: /app (the key), /apple... and /ap are outside it.
    await wipe();
    await seed();
    await put('/app', 'changed');
    await put('/app/x', 'changed');
    await put('/app/new', 'stale');
    await put('/apple/new', 'outside');
    await restoreOk(full, ['--prefix', '/app/', '--overwrite']);
    assert.deepEqual(await keysNow(), ['/ap', '/app', '/app/x', '/app/y/z', '/apple', '/apple/new', '/apple/pie', '/b']);
    assert.equal(await valueOf('/app'), 'changed', 'the key /app is not under the prefix /app/');
    assert.equal(await valueOf('/app/x'), 'v/app/x');
  });

  test('an archive taken with a prefix restores only inside that prefix, even with overwrite and no restore prefix', async () => {
    await seed();
    const appSlash = await backup(['--prefix', '/app/']);
    const app = await backup(['--prefix', '/app']);
    await put('/app/new', 'stale');
    await put('/apple/new', 'outside');
    await put('/app', 'changed');
    await restoreOk(appSlash, ['--overwrite']);
    assert.deepEqual(await keysNow(), ['/ap', '/app', '/app/x', '/app/y/z', '/apple', '/apple/new', '/apple/pie', '/b']);
    assert.equal(await valueOf('/app'), 'changed');

    // A shorter restore prefix than the archive's: the archive's prefix still bounds overwrite.
    await restoreOk(app, ['--prefix', '/ap', '--overwrite']);
    assert.deepEqual(await keysNow(), ['/ap', '/app', '/app/x', '/app/y/z', '/apple', '/apple/pie', '/b']);
    assert.equal(await valueOf('/app'), 'v/app');

    // A longer restore prefix inside the archive's: only those keys.
    await wipe();
    await restoreOk(app, ['--prefix', '/app/']);
    assert.deepEqual(await keysNow(), ['/app/x', '/app/y/z']);

    // A restore prefix disjoint from the archive's is refused, and nothing changes.
    await seed();
    const before = await dump();
    for (const extra of [[], ['--overwrite']]) {
      const r = await restore(appSlash, ['--prefix', '/b', ...extra]);
      expectCode(r, 4, 'restore with a prefix disjoint from the archive');
      assert.deepEqual(await dump(), before);
    }
  });
});

describe('leases', () => {
  test('keys sharing a lease share it after restore; the id is kept and the TTL roughly restored', async () => {
    const l1 = await grant(600);
    const l2 = await grant(300);
    await put('/lease/a', 'a', l1);
    await put('/lease/b', 'b', l1);
    await put('/lease/c', 'c', l2);
    await put('/lease/p', 'permanent');
    const expected = await content();
    const archive = await backup();
    const v = await verifyJson(archive);
    assert.equal(v.leases, 2);

    await wipe();
    assert.deepEqual((await dump()).leases, []);
    await restoreOk(archive);
    const after = await content();
    assertSameContent(after, expected, 'leased keys');
    const byKey = new Map(after.map((e) => [Buffer.from(e.key, 'hex').toString(), e.lease]));
    assert.equal(byKey.get('/lease/a'), l1);
    assert.equal(byKey.get('/lease/b'), l1);
    assert.equal(byKey.get('/lease/c'), l2);
    assert.equal(byKey.get('/lease/p'), '0');
    const ttl1 = Number((await client.leaseClient.leaseTimeToLive({ ID: l1, keys: false })).TTL);
    const ttl2 = Number((await client.leaseClient.leaseTimeToLive({ ID: l2, keys: false })).TTL);
    assert.ok(ttl1 > 480 && ttl1 <= 600, `lease 1 TTL ${ttl1}`);
    assert.ok(ttl2 > 180 && ttl2 <= 300, `lease 2 TTL ${ttl2}`);

    // Again, with the leases already there: reused, not duplicated.
    await restoreOk(archive, ['--overwrite']);
    assertSameContent(await content(), expected, 'second restore of leased keys');
    assert.deepEqual((await dump()).leases, [l1, l2].sort());

    // Only the leases of restored keys are granted.
    await wipe();
    await restoreOk(archive, ['--prefix', '/lease/c']);
    assert.deepEqual((await dump()).leases, [l2]);
    assert.deepEqual(
      (await content()).map((e) => [Buffer.from(e.key, 'hex').toString(), e.lease]),
      [['/lease/c', l2]],
    );
  });

  test('a legacy archive restores leased keys as permanent keys, and says so', async () => {
    const l = await grant(600);
    await put('/lease/a', 'a', l);
    await put('/plain', 'p');
    const expected = await content();
    const legacy = await backup(['--format', 'legacy']);
    await wipe();
    const r = await restoreOk(legacy);
    assert.match(r.stderr, /without leases/);
    assertSameContent(await content(), withoutLeases(expected), 'legacy restore');
  });
});

describe('overwrite', () => {
  const seedBase = async () => {
    await put('/o/keep', '1');
    await put('/o/change', 'old');
    await put('/other/x', '1');
  };
  const drift = async () => {
    await put('/o/change', 'new');
    await put('/o/stale', 's');
    await put('/other/x', '2');
    await put('/other/new', 'n');
  };
  const state = async () =>
    Object.fromEntries((await content()).map((e) => [Buffer.from(e.key, 'hex').toString(), Buffer.from(e.value, 'hex').toString()]));

  test('off: restore only adds and updates; stale keys stay', async () => {
    await seedBase();
    const archive = await backup();
    await drift();
    await restoreOk(archive, ['--prefix', '/o/']);
    assert.deepEqual(await state(), { '/o/change': 'old', '/o/keep': '1', '/o/stale': 's', '/other/new': 'n', '/other/x': '2' });
  });

  test('on: stale keys under the prefix are deleted, keys outside it are untouched', async () => {
    await seedBase();
    const archive = await backup();
    await drift();
    const r = await restoreOk(archive, ['--prefix', '/o/', '--overwrite']);
    assert.match(r.stderr, /deleted 1 keys/);
    assert.deepEqual(await state(), { '/o/change': 'old', '/o/keep': '1', '/other/new': 'n', '/other/x': '2' });

    // Without a prefix, overwrite covers the whole keyspace.
    await restoreOk(archive, ['--overwrite']);
    assert.deepEqual(await state(), { '/o/change': 'old', '/o/keep': '1', '/other/x': '1' });
  });

  test('through the SHIELD face: restore -e with overwrite and prefix, archive on stdin', async () => {
    await seedBase();
    const shieldBackup = await runCli(['backup', '-e', JSON.stringify({ url: etcd.url })]);
    expectCode(shieldBackup, 0, 'backup -e');
    await drift();
    const r = await runCli(['restore', '-e', JSON.stringify({ url: etcd.url, overwrite: true, prefix: '/o/' })], { input: shieldBackup.stdout });
    expectCode(r, 0, 'restore -e');
    assert.equal(r.stdout.length, 0, 'restore prints its summary on stderr');
    assert.deepEqual(await state(), { '/o/change': 'old', '/o/keep': '1', '/other/new': 'n', '/other/x': '2' });
  });

  test('restoring twice gives the same keyspace', async () => {
    const l = await grant(600);
    await put('/t/a', 'a', l);
    await put(b([0x00, 0xff]), b([0xff, 0x00]));
    await put('/t/empty', '');
    await seedBase();
    const archive = await backup();
    await drift();
    await restoreOk(archive, ['--overwrite']);
    const once = await content();
    await restoreOk(archive, ['--overwrite']);
    assert.deepEqual(await content(), once);
    await restoreOk(archive);
    assert.deepEqual(await content(), once);
  });
});

describe('dry run', () => {
  test('restore --dry-run changes nothing and reports what it would add, update, keep and delete', async () => {
    await put('/d/a', 'same');
    await put('/d/b', 'old');
    await put('/d/c', 'gone');
    const archive = await backup();
    await put('/d/b', 'new');
    await client.kv.deleteRange({ key: b('/d/c') });
    await put('/d/d', 'extra');
    const before = await dump();

    const on = await restore(archive, ['--dry-run', '--overwrite']);
    expectCode(on, 0, 'dry run with overwrite');
    const out = on.stdout.toString('utf8');
    assert.match(out, /add\s+1 keys/);
    assert.match(out, /update\s+1 keys/);
    assert.match(out, /keep\s+1 keys/);
    assert.match(out, /delete\s+1 keys/);
    assert.match(out, /\/d\/c/, 'names an added key');
    assert.deepEqual(await dump(), before, 'a dry run must not change the cluster');

    const off = await restore(archive, ['--dry-run']);
    expectCode(off, 0, 'dry run without overwrite');
    assert.match(off.stdout.toString('utf8'), /leave\s+1 keys/);
    assert.deepEqual(await dump(), before);

    // A dry run checks the archive too.
    const bad = await restore(archive.subarray(0, archive.length - 3), ['--dry-run']);
    expectCode(bad, 4, 'dry run of a truncated archive');
    assert.deepEqual(await dump(), before);
  });
});

describe('damaged archives', () => {
  test('truncated and altered archives are refused and the cluster stays exactly as it was', async () => {
    const l = await grant(900);
    const entries: [Buffer, Buffer][] = [];
    for (let i = 0; i < 300; i++) entries.push([b(`/t/${String(i).padStart(4, '0')}`), b(`value ${i} `.repeat(1 + (i % 5)))]);
    await putMany(client, entries.map(([key, value]) => ({ key, value })));
    await put('/t/leased', 'L', l);
    const archive = await backup();
    const legacy = await backup(['--format', 'legacy']);

    // Make the cluster differ from the archive, so any write or delete would show.
    for (let i = 0; i < 300; i += 3) await put(`/t/${String(i).padStart(4, '0')}`, 'drifted');
    for (let i = 1; i < 300; i += 7) await client.kv.deleteRange({ key: b(`/t/${String(i).padStart(4, '0')}`) });
    for (let i = 0; i < 20; i++) await put(`/t/extra-${i}`, 'extra');
    await put('/outside', 'x');
    const before = await dump();

    const flip = (at: number, mask = 0x01) => {
      const copy = Buffer.from(archive);
      copy[at]! ^= mask;
      return copy;
    };
    const headerEnd = archive.indexOf(b('"}')) + 2;
    const damaged: [string, Buffer][] = [
      ['empty', Buffer.alloc(0)],
      ['first byte only', archive.subarray(0, 1)],
      ['magic line only', archive.subarray(0, MAGIC.length)],
      ['cut in the header', archive.subarray(0, MAGIC.length + 20)],
      ['cut after the header', archive.subarray(0, headerEnd)],
      ['cut in half', archive.subarray(0, Math.floor(archive.length / 2))],
      ['last byte missing', archive.subarray(0, archive.length - 1)],
      ['trailer missing', archive.subarray(0, archive.lastIndexOf(b('T')))],
      ['trailing garbage', Buffer.concat([archive, b('x')])],
      ['flipped bit in the version', flip(MAGIC.length - 2)],
      ['flipped bit in the header', flip(MAGIC.length + 30)],
      ['flipped bit in a middle record', flip(Math.floor(archive.length / 2))],
      ['flipped bit near the lease frame', flip(archive.lastIndexOf(b('L')) - 1)],
      ['flipped high bit in a record length', flip(headerEnd + 1, 0x80)],
      ['flipped bit in the checksum', flip(archive.length - 5, 0x02)],
      ['legacy cut mid-line', legacy.subarray(0, Math.floor(legacy.length / 2))],
      ['legacy without separator', Buffer.from(legacy.toString('latin1').replace(' : ', ' ; '), 'latin1')],
      ['legacy with a non-base64 byte', Buffer.from(legacy.toString('latin1').replace(/[A-Za-z0-9]/, '!'), 'latin1')],
    ];
    for (const [i, [name, data]] of damaged.entries()) {
      // From stdin without overwrite, from a file with overwrite, and verify: together, then check the cluster.
      const inFile = path.join(tmp, `damaged-${i}.archive`);
      fs.writeFileSync(inFile, data);
      const [plain, overwrite, verify] = await Promise.all([
        restore(data),
        restore('', ['--in', inFile, '--overwrite']),
        runCli(['verify'], { input: data }),
      ]);
      expectCode(plain, 4, `restore of ${name}`);
      expectCode(overwrite, 4, `restore --overwrite of ${name}`);
      expectCode(verify, 4, `verify of ${name}`);
      assert.deepEqual(await dump(), before, `${name}: a refused restore changed the cluster`);
    }
  });
});

describe('verify, files and formats', () => {
  test('verify: exit 0 and a JSON summary for good archives, 4 for bad ones', async () => {
    const l = await grant(600);
    await put('/v/a', 'a', l);
    await put('/v/b', 'b');
    await put('/w', 'w');
    const archive = await backup(['--prefix', '/v/']);
    const s = await verifyJson(archive);
    assert.equal(s.ok, true);
    assert.equal(s.format, 'etcd-shield');
    assert.equal(s.keys, 2);
    assert.equal(s.leases, 1);
    assert.equal(s.bytes, archive.length);
    assert.equal(s.prefix, '/v/');
    assert.match(String(s.revision), /^\d+$/);
    assert.match(String(s.sha256), /^[0-9a-f]{64}$/);
    assert.match(String(s.clusterId), /^[0-9a-f]+$/);
    assert.ok(!Number.isNaN(Date.parse(String(s.createdAt))));
    assert.match(String(s.tool), /etcd-shield/);

    const text = await runCli(['verify'], { input: archive });
    expectCode(text, 0, 'verify');
    assert.match(text.stdout.toString('utf8'), /intact/);

    const legacy = await backup(['--format', 'legacy']);
    const ls = await verifyJson(legacy);
    assert.equal(ls.format, 'legacy');
    assert.equal(ls.keys, 3);
    assert.equal(ls.revision, null);

    const file = path.join(tmp, 'verify.archive');
    fs.writeFileSync(file, archive);
    const fromFile = await runCli(['verify', '--json', '--in', file]);
    expectCode(fromFile, 0, 'verify --in');
    assert.equal((JSON.parse(fromFile.stdout.toString('utf8')) as VerifySummary).keys, 2);

    for (const [name, args, input] of [
      ['truncated', ['verify', '--json'], archive.subarray(0, archive.length - 1)],
      ['empty input', ['verify', '--json'], Buffer.alloc(0)],
      ['not an archive', ['verify'], b('hello world\n')],
      ['missing file', ['verify', '--in', path.join(tmp, 'no-such-file')], Buffer.alloc(0)],
      ['a directory', ['verify', '--in', tmp], Buffer.alloc(0)],
    ] as [string, string[], Buffer][]) {
      const r = await runCli(args, { input });
      expectCode(r, 4, `verify of ${name}`);
      assert.notEqual(r.stderr.trim(), '', `${name}: says why`);
      assertNoCrash(r, `verify of ${name}`);
    }
    const dir = await runCli(['verify', '--in', tmp]);
    assert.match(dir.stderr, /is a directory, not an archive or snapshot file[\s\S]*--from /, describeRun(dir));
  });

  test('backup --out FILE; restore from --in FILE and from stdin give the same keyspace', async () => {
    const l = await grant(600);
    await put('/f/a', 'a', l);
    await put('/f/b', randomBytes(300));
    const expected = await content();
    const file = path.join(tmp, 'out.archive');
    const r = await runCli(['backup', '--endpoints', etcd.url, '--out', file]);
    expectCode(r, 0, 'backup --out');
    assert.equal(r.stdout.length, 0, 'with --out, stdout stays empty');
    assert.ok(r.stderr.includes(file), 'the summary names the file');
    const data = fs.readFileSync(file);
    assert.equal(data.subarray(0, MAGIC.length).toString('latin1'), MAGIC);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600, 'the archive is private');

    await wipe();
    const fromFile = await runCli(['restore', '--endpoints', etcd.url, '--in', file]);
    expectCode(fromFile, 0, 'restore --in');
    assertSameContent(await content(), expected, 'restore --in');
    await wipe();
    await restoreOk(data);
    assertSameContent(await content(), expected, 'restore from stdin');

    const missing = await runCli(['restore', '--endpoints', etcd.url, '--in', path.join(tmp, 'absent.archive')]);
    expectCode(missing, 4, 'restore --in a missing file');
    assertSameContent(await content(), expected, 'unchanged after a missing file');
  });

  test('backup --out replaces a file only when complete; through a symlink it replaces the target; /dev/null takes it as it is', async () => {
    await put('/o/a', 'a');
    const file = path.join(tmp, 'replaced.archive');
    fs.writeFileSync(file, 'an older archive');
    expectCode(await runCli(['backup', '--endpoints', etcd.url, '--prefix', '/o/', '--out', file]), 0, 'backup over an existing file');
    assert.equal(fs.readFileSync(file).subarray(0, MAGIC.length).toString('latin1'), MAGIC);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600, 'the new archive is private');

    const link = path.join(tmp, 'latest.archive');
    fs.symlinkSync(file, link);
    fs.writeFileSync(file, 'an older archive');
    expectCode(await runCli(['backup', '--endpoints', etcd.url, '--prefix', '/o/', '--out', link]), 0, 'backup through a symlink');
    assert.ok(fs.lstatSync(link).isSymbolicLink(), 'the symlink stays a symlink');
    assert.equal(fs.readFileSync(file).subarray(0, MAGIC.length).toString('latin1'), MAGIC, 'the file it points to holds the archive');

    expectCode(await runCli(['backup', '--endpoints', etcd.url, '--prefix', '/o/', '--out', '/dev/null']), 0, 'backup to /dev/null');
    assert.ok(fs.statSync('/dev/null').isCharacterDevice(), '/dev/null is still a device');
    assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.endsWith('.part')), [], 'no part file is left');
  });

  test('--format legacy writes the original plugin format byte for byte, keys descending', async () => {
    const pairs: [Buffer, Buffer][] = [
      [b('/a'), b('1')],
      [b('/a/b'), Buffer.alloc(0)],
      [b([0xc3, 0x28]), b([0x00, 0xff])],
      [b('/z\nz'), b('multi\nline')],
      [b([0x00]), b('zero key')],
    ];
    for (const [k, v] of pairs) await put(k, v);
    const legacy = await backup(['--format', 'legacy']);
    const sorted = [...pairs].sort((x, y) => Buffer.compare(y[0], x[0]));
    const expected = sorted.map(([k, v]) => `${k.toString('base64')} : ${v.toString('base64')}\n`).join('');
    assert.equal(legacy.toString('latin1'), expected);

    const bad = await runCli(['backup', '--endpoints', etcd.url, '--format', 'tarball']);
    expectCode(bad, 1, 'an unknown --format');
  });
});
