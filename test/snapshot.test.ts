// Snapshot files (etcdctl snapshot save, backup --mode snapshot) restored
// online, whole, by prefix and at older revisions, into a second real etcd,
// and compared key by key with what the source held at that revision.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Etcd3 } from 'etcd3';
import { expectCode, runCli, type CliResult } from './cli';
import { putMany } from './etcd-data';
import { startEtcd, type EtcdCluster } from './harness';
import type { VerifySummary } from '../src/api/verify';
import { verifyArchive } from '../src/archive/verify';
import { CancelledError } from '../src/errors';
import { BoltFile } from '../src/snapshot/file';
import { checkStructure } from '../src/snapshot/structure';
import { findBucket, leaves, rootBucket } from '../src/snapshot/tree';

const BULK = 100_000;
const GRPC = { 'grpc.max_receive_message_length': 256 * 1024 * 1024, 'grpc.max_send_message_length': 256 * 1024 * 1024 };

type Entry = { value: string; lease: string };
/** Hex key -> value (hex) and lease, as one revision of a cluster holds them. */
type State = Map<string, Entry>;

let source: EtcdCluster;
let target: EtcdCluster;
let src: Etcd3;
let dst: Etcd3;
let tmp: string;
/** Revisions of the source: its compaction, one between it and the end, the end. */
const rev = { compacted: 0, middle: 0, final: 0 };
const states = new Map<number, State>();
let lease1 = '';
let revokedLease = '';
let etcdctlFile = '';
let shieldFile = '';

const b = (s: string) => Buffer.from(s);
const hex = (x: Buffer | string) => (typeof x === 'string' ? b(x) : x).toString('hex');

/** Every key at a revision (0: the newest), paged so no reply nears grpc's limit. */
async function stateAt(client: Etcd3, revision = 0, prefix = ''): Promise<State> {
  const state: State = new Map();
  let key = prefix ? b(prefix) : Buffer.from([0]);
  const end = prefix ? prefixEnd(b(prefix)) : Buffer.from([0]);
  for (;;) {
    const r = await client.kv.range({ key, range_end: end, limit: 5000, ...(revision ? { revision: String(revision) } : {}) });
    for (const kv of r.kvs) state.set(hex(kv.key), { value: hex(kv.value), lease: kv.lease });
    if (!r.more || r.kvs.length === 0) return state;
    key = Buffer.concat([r.kvs[r.kvs.length - 1]!.key, Buffer.from([0])]);
  }
}

function prefixEnd(p: Buffer): Buffer {
  const end = Buffer.from(p);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

function only(state: State, prefix: string): State {
  const p = hex(prefix);
  return new Map([...state].filter(([k]) => k.startsWith(p)));
}

/** Names the first differing key rather than printing 100k of them. */
function assertSameState(actual: State, expected: State, what: string, leases = true): void {
  for (const [k, e] of expected) {
    const a = actual.get(k);
    assert.ok(a, `${what}: key ${Buffer.from(k, 'hex').toString('latin1').slice(0, 60)} is missing`);
    assert.equal(a.value, e.value, `${what}: value of key ${k.slice(0, 60)}`);
    if (leases) assert.equal(a.lease, e.lease, `${what}: lease of key ${k.slice(0, 60)}`);
  }
  for (const k of actual.keys()) assert.ok(expected.has(k), `${what}: extra key ${k.slice(0, 60)}`);
}

async function currentRevision(client: Etcd3): Promise<number> {
  return Number((await client.kv.range({ key: b('\0') })).header.revision);
}

async function restoreInto(file: string, args: string[] = []): Promise<CliResult> {
  return runCli(['restore', '--endpoints', target.url, '--in', file, ...args], { timeoutMs: 180_000 });
}

async function wipeTarget(): Promise<void> {
  await dst.kv.deleteRange({ key: Buffer.from([0]), range_end: Buffer.from([0]) });
  for (const l of (await dst.leaseClient.leaseLeases()).leases) await dst.leaseClient.leaseRevoke({ ID: l.ID });
}

/** Runs a restore that must be refused, and shows the target did not change. */
async function assertRefused(file: string, args: string[], message: RegExp): Promise<CliResult> {
  const before = await currentRevision(dst);
  const r = await restoreInto(file, args);
  expectCode(r, 4, `restore ${path.basename(file)} ${args.join(' ')}`);
  assert.match(r.stderr, message);
  assert.equal(await currentRevision(dst), before, 'a refused restore must not write to etcd');
  return r;
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-shield-snap-'));
  [source, target] = await Promise.all([startEtcd(), startEtcd()]);
  src = new Etcd3({ hosts: source.url, grpcOptions: GRPC });
  dst = new Etcd3({ hosts: target.url, grpcOptions: GRPC });

  // Enough keys that the key bucket's tree has branch pages.
  await putMany(
    src,
    Array.from({ length: BULK }, (_, i) => ({ key: b(`/bulk/${String(i).padStart(6, '0')}`), value: b(`value ${i}`) })),
  );
  for (let v = 1; v <= 5; v++) await src.put('/multi/k').value(`v${v}`);
  await src.put('/del/a').value('a');
  await src.put('/del/b').value('b');
  await src.delete().key('/del/a');
  // Binary keys and values, invalid UTF-8 included.
  await src.kv.put({ key: Buffer.from([0x00, 0xff, 0x80]), value: randomBytes(1000) });
  await src.kv.put({ key: Buffer.concat([b('/bin/'), Buffer.from([0xff, 0xfe, 0x00, 0x01])]), value: randomBytes(64) });
  // Values larger than a page: overflow pages.
  await src.kv.put({ key: b('/large/x'), value: randomBytes(200 * 1024) });
  await src.kv.put({ key: b('/large/y'), value: randomBytes(900 * 1024) });
  lease1 = (await src.leaseClient.leaseGrant({ TTL: 3600, ID: '0' })).ID;
  await src.leaseClient.leaseGrant({ TTL: 3600, ID: '0' }); // a lease without keys
  await src.kv.put({ key: b('/lease/a'), value: b('la'), lease: lease1 });
  await src.kv.put({ key: b('/lease/b'), value: b('lb'), lease: lease1 });
  revokedLease = (await src.leaseClient.leaseGrant({ TTL: 3600, ID: '0' })).ID;
  await src.kv.put({ key: b('/gone/x'), value: b('gx'), lease: revokedLease });

  rev.compacted = await currentRevision(src);
  await src.kv.compact({ revision: String(rev.compacted), physical: true });
  // History after the compaction: several revisions of a key, a deletion, a re-creation.
  await src.put('/multi/k').value('v6');
  await src.put('/bulk/000005').value('changed');
  await src.delete().key('/del/b');
  // Keys whose whole life is after the compaction: changed, deleted and re-created, created only.
  await src.put('/win/a').value('a1');
  await src.put('/win/a').value('a2');
  await src.put('/win/b').value('b1');
  await src.delete().key('/win/b');
  await src.put('/win/b').value('b again');
  await src.put('/win/c').value('c1');
  await src.put('/win/d').value('d1');
  rev.middle = await currentRevision(src);
  await src.delete().key('/win/c');
  await src.put('/win/d').value('d2');
  await src.delete().key('/win/d');
  await src.put('/win/d').value('d3');
  states.set(rev.middle, await stateAt(src, rev.middle));
  await src.put('/multi/k').value('v7');
  await src.put('/del/a').value('again');
  await src.leaseClient.leaseRevoke({ ID: revokedLease }); // deletes /gone/x
  await src.put('/bulk/000007').value('changed too');
  rev.final = await currentRevision(src);
  states.set(rev.final, await stateAt(src));

  etcdctlFile = path.join(tmp, 'etcdctl.db');
  const saved = await source.etcdctl(['snapshot', 'save', etcdctlFile]);
  assert.equal(saved.code, 0, saved.stderr);
  shieldFile = path.join(tmp, 'shield.db');
  const r = await runCli(['backup', '--endpoints', source.url, '--mode', 'snapshot', '--out', shieldFile]);
  expectCode(r, 0, 'backup --mode snapshot');
  assert.match(r.stderr, new RegExp(`etcd snapshot of member [0-9a-f]+ \\(leader\\) at ${source.endpoints[0]}, revision ${rev.final}`));
});

after(async () => {
  src?.close();
  dst?.close();
  await Promise.all([source?.stop(), target?.stop()]);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('reading a snapshot', () => {
  test('the key bucket has branch pages and the large values overflow pages', async () => {
    const file = await BoltFile.open(etcdctlFile);
    try {
      assert.equal(file.hasTrailer, true);
      const keys = findBucket(file, rootBucket(file), 'key');
      assert.ok(keys && 'root' in keys, 'the key bucket has a root page of its own');
      assert.equal(file.page(keys.root).isLeaf, false, 'with 100k keys the root of the key bucket is a branch page');
      let leafPages = 0;
      let overflowing = 0;
      for (const { page } of leaves(file, keys)) {
        leafPages++;
        if (page.buf.length > file.pageSize) overflowing++;
      }
      assert.ok(leafPages > 100, `${leafPages} leaf pages`);
      // bbolt keeps at least two elements per page, so both large values may share one.
      assert.ok(overflowing >= 1, `${overflowing} leaf pages with overflow (the 200 KiB and 900 KiB values)`);
    } finally {
      await file.close();
    }
  });

  test('reading the file gives the event loop turns: a stop from a timer ends the first check part-way', async () => {
    // Pages are read synchronously, and the walks yield now and then (BoltFile.breather). A timer
    // callback stops the verify once this process (the hashing worker included) has read half the
    // file: without those turns the first callback after that would come only once the tree walk
    // is over, and the stop would land in the reading of the keys, not in the check of the file.
    const readBytes = () => Number(/^rchar: (\d+)/m.exec(fs.readFileSync('/proc/self/io', 'utf8'))![1]);
    const half = fs.statSync(etcdctlFile).size / 2;
    const from = readBytes();
    const stop = new AbortController();
    let running = true;
    const tick = () => {
      if (readBytes() - from > half) stop.abort();
      if (running && !stop.signal.aborted) setImmediate(tick);
    };
    setImmediate(tick);
    try {
      await assert.rejects(verifyArchive(etcdctlFile, '', stop.signal), (err: unknown) => err instanceof CancelledError && /while checking the snapshot/.test((err as Error).message));
    } finally {
      running = false;
    }
  });

  test('verify reports revision, compaction, keys, leases and the trailer, for both makers', async () => {
    for (const file of [etcdctlFile, shieldFile]) {
      const r = await runCli(['verify', '--in', file, '--json']);
      expectCode(r, 0, `verify ${file}`);
      const v = JSON.parse(r.stdout.toString('utf8')) as VerifySummary;
      assert.equal(v.format, 'etcd-snapshot');
      assert.equal(v.revision, String(rev.final));
      assert.equal(v.keys, states.get(rev.final)!.size);
      assert.equal(v.leases, 2, 'two leases were alive when the snapshot was taken');
      assert.equal(v.snapshot?.compactRevision, String(rev.compacted));
      assert.equal(v.snapshot?.trailer, 'matched');
      const text = await runCli(['verify', '--in', file]);
      expectCode(text, 0, 'verify');
      assert.match(text.stdout.toString('utf8'), new RegExp(`compacted at ${rev.compacted}`));
    }
  });

  test('etcdctl snapshot status reads what backup --mode snapshot wrote', async () => {
    const r = await source.etcdctl(['snapshot', 'status', shieldFile, '-w', 'json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout.toString('utf8')) as { revision: number }).revision, rev.final);
  });
});

describe('online restore from a snapshot', () => {
  test('whole, with overwrite: the target holds exactly what the source held, leases included', async () => {
    for (const file of [etcdctlFile, shieldFile]) {
      await wipeTarget();
      await dst.put('/stale').value('removed by overwrite');
      const r = await restoreInto(file, ['--overwrite']);
      expectCode(r, 0, `restore ${file}`);
      assert.match(r.stderr, /restore done: wrote \d+ keys with 1 leases, deleted 1 keys/);
      // etcd-shield regrants lease ids as they were, so leases compare by id.
      assertSameState(await stateAt(dst), states.get(rev.final)!, `restore of ${path.basename(file)}`);
    }
  });

  test('by prefix at the newest revision, and binary keys by a binary prefix', async () => {
    await wipeTarget();
    expectCode(await restoreInto(etcdctlFile, ['--prefix', '/multi/']), 0, 'restore --prefix /multi/');
    assertSameState(await stateAt(dst), only(states.get(rev.final)!, '/multi/'), 'prefix /multi/');
    assert.equal((await stateAt(dst)).get(hex('/multi/k'))?.value, hex('v7'));
    await wipeTarget();
    expectCode(await restoreInto(etcdctlFile, ['--prefix', '/large/']), 0, 'restore --prefix /large/');
    assertSameState(await stateAt(dst), only(states.get(rev.final)!, '/large/'), 'prefix /large/ (overflow values)');
  });

  test('--to-revision between the compaction and the end restores the keyspace as it was then', async () => {
    await wipeTarget();
    const r = await restoreInto(etcdctlFile, ['--to-revision', String(rev.middle), '--overwrite']);
    expectCode(r, 0, '--to-revision middle');
    // /gone/x's lease was revoked after that revision: it comes back under a new lease of the same id.
    assert.match(r.stderr, /1 leases that keys at revision \d+ used were revoked later/);
    assertSameState(await stateAt(dst), states.get(rev.middle)!, `restore at revision ${rev.middle}`);
    const ttl = await dst.leaseClient.leaseTimeToLive({ ID: revokedLease, keys: false });
    assert.ok(Number(ttl.TTL) > 0 && Number(ttl.grantedTTL) === 3600, `the revoked lease came back with an hour: ${JSON.stringify(ttl)}`);
    assert.equal((await stateAt(dst)).get(hex('/multi/k'))?.value, hex('v6'));
    assert.equal((await stateAt(dst)).has(hex('/del/b')), false, 'deleted after the compaction, before the middle');
    assert.equal((await stateAt(dst)).has(hex('/del/a')), false, 'deleted before the compaction, re-created after the middle');
    await wipeTarget();
    expectCode(await restoreInto(etcdctlFile, ['--to-revision', String(rev.middle), '--prefix', '/bulk/0000']), 0, 'prefix at middle');
    assertSameState(await stateAt(dst), only(states.get(rev.middle)!, '/bulk/0000'), 'prefix /bulk/0000 at the middle revision');
  });

  test('a revision before the compaction or after the end is refused before any write', async () => {
    await wipeTarget();
    await assertRefused(etcdctlFile, ['--to-revision', String(rev.compacted - 1)], new RegExp(`revision ${rev.compacted - 1} has been compacted away .*the oldest revision it holds is ${rev.compacted}`));
    await assertRefused(etcdctlFile, ['--to-revision', String(rev.final + 1)], new RegExp(`newest revision is ${rev.final}`));
  });

  test('--to-revision with an archive (one revision only) is refused', async () => {
    const archive = path.join(tmp, 'target.archive');
    expectCode(await runCli(['backup', '--endpoints', target.url, '--out', archive]), 0, 'backup of the target');
    await assertRefused(archive, ['--to-revision', '5'], /a revision was asked for, but .* is an etcd-shield archive, which holds one revision only/);
  });

  test('dry run compares without writing', async () => {
    await wipeTarget();
    const before = await currentRevision(dst);
    const r = await restoreInto(etcdctlFile, ['--dry-run', '--prefix', '/multi/']);
    expectCode(r, 0, 'dry run');
    assert.match(r.stdout.toString('utf8'), /add {6}1 keys/);
    assert.equal(await currentRevision(dst), before);
  });
});

describe('damaged snapshots are refused before the first write', () => {
  const copy = (name: string, mutate: (buf: Buffer) => Buffer): string => {
    const file = path.join(tmp, name);
    fs.writeFileSync(file, mutate(fs.readFileSync(etcdctlFile)));
    return file;
  };
  const withoutTrailer = (buf: Buffer) => buf.subarray(0, buf.length - 32);

  test('truncated', async () => {
    await wipeTarget();
    const file = copy('truncated.db', (buf) => buf.subarray(0, Math.floor(buf.length / 2 / 4096) * 4096));
    await assertRefused(file, [], /is truncated: its \d+ pages of 4096 bytes need \d+ bytes/);
  });

  test('a flipped byte inside a page, and a wrong trailer: the sha256 check', async () => {
    const flipped = copy('flipped.db', (buf) => {
      const out = Buffer.from(buf);
      out[10 * 4096 + 100]! ^= 0x01;
      return out;
    });
    await assertRefused(flipped, [], /the sha256 trailer of .* does not match its contents/);
    const wrong = copy('wrong-trailer.db', (buf) => Buffer.concat([withoutTrailer(buf), Buffer.alloc(32, 7)]));
    await assertRefused(wrong, [], /the sha256 trailer of .* does not match its contents/);
    // The tree walk fails first here, but the hash (on another thread) is what is reported.
    const file = await BoltFile.open(etcdctlFile);
    const root = file.meta.root;
    await file.close();
    const both = copy('tree-and-trailer.db', (buf) => {
      const out = Buffer.from(buf);
      out[root * 4096]! ^= 0x40;
      return out;
    });
    await assertRefused(both, [], /the sha256 trailer of .* does not match its contents/);
    const walked = await BoltFile.open(both);
    await assert.rejects(checkStructure(walked), /the page says it is page/, 'the tree walk alone fails on that file');
    await walked.close();
  });

  test('without a trailer, a damaged page header or meta pages: the structure checks', async () => {
    const file = await BoltFile.open(etcdctlFile);
    const keys = (await findBucket(file, rootBucket(file), 'key')) as { root: number };
    await file.close();
    const header = copy('header.db', (buf) => {
      const out = Buffer.from(withoutTrailer(buf));
      out[keys.root * 4096]! ^= 0x40; // the page id of the key bucket's root
      return out;
    });
    await assertRefused(header, [], new RegExp(`page ${keys.root} of .*: the page says it is page`));
    const metas = copy('metas.db', (buf) => {
      const out = Buffer.from(withoutTrailer(buf));
      out[16 + 20]! ^= 0xff; // inside both meta pages' checksummed fields
      out[4096 + 16 + 20]! ^= 0xff;
      return out;
    });
    await assertRefused(metas, [], /not a usable bbolt database: the first meta page is unusable \(its checksum does not match\)/);
  });
});

describe('offline: etcdctl snapshot restore', () => {
  test('a backup --mode snapshot file brings a member back that serves the same keys', async () => {
    // etcd 3.4 has no etcdutl; etcdctl snapshot restore builds the data directory.
    const dataDir = path.join(tmp, 'restored.etcd');
    const restored = await startEtcd({ extraArgs: [] });
    try {
      const node = restored.nodes[0]!;
      const peer = node.peerUrl;
      const r = await restored.etcdctl([
        'snapshot',
        'restore',
        shieldFile,
        `--data-dir=${dataDir}`,
        `--name=${node.name}`,
        `--initial-cluster=${node.name}=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      // The harness's member gives way to one on the restored data, same name, ports and flags.
      await node.kill();
      fs.rmSync(node.dataDir, { recursive: true, force: true });
      fs.renameSync(dataDir, node.dataDir);
      await node.start();
      const client = new Etcd3({ hosts: restored.url, grpcOptions: GRPC });
      try {
        assertSameState(await stateAt(client), states.get(rev.final)!, 'the member restored offline');
      } finally {
        client.close();
      }
    } finally {
      await restored.stop();
    }
  });
});
