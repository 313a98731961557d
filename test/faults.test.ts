// etcd faults during backup and restore, against real etcd processes (issue 5, parts 3 and 4).
//
// Each fault ends in success or in a clear error (exit 4, a message that says
// what happened, no stack trace); nothing is lost (no key deleted by a failed
// restore, no trailer on a failed backup); and running the same command again
// converges to the archive. Faults are placed by state, never by timing: a
// backup is held still by not reading its stdout, a restore is stopped at its
// first key. Each test then shows that its fault hit the run: etcd's own
// counters (its /metrics page) or the CLI's messages say so.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { Etcd3 } from 'etcd3';
import { NativeEncoder } from '../src/archive/native-encode';
import { rangeReplyOf } from './range-reply';
import { MAGIC } from '../src/archive/native-format';
import { scanArchive } from '../src/archive/read';
import { verifyArchive } from '../src/archive/verify';
import type { KeyRecord } from '../src/archive/types';
import { AUTH_RBAC } from '../src/config/fields';
import { resolveConfig } from '../src/config/config';
import { ArchiveError, ExitCode } from '../src/errors';
import { connect } from '../src/etcd/connect';
import { BatchWriter } from '../src/restore/writer';
import { assertNoCrash, describeRun, killStartedClis, runCli, startCli, type CliResult } from './cli';
import { putMany } from './etcd-data';
import { callsAnswered, restoreStoppedAtFirstKey } from './fault-points';
import { startEtcd, withEtcd, type EtcdCluster } from './harness';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// Outcomes

/** One line for the test log: which of the accepted outcomes a fault led to. */
function outcome(r: CliResult): string {
  return r.code === 0 ? 'success' : `exit ${r.code}: ${r.stderr.trim().split('\n').filter((l) => l.startsWith('etcd-shield:')).join(' | ')}`;
}

/** Success, or exit 4 with a message that is not a crash. */
function assertSuccessOrClearError(r: CliResult, context: string, says: RegExp): void {
  assertNoCrash(r, context);
  if (r.code === 0) return;
  assert.equal(r.code, ExitCode.failure, `${context}\n${describeRun(r)}`);
  // The tool's own name says "etcd"; the message itself must say what happened.
  assert.match(r.stderr.replace(/etcd-shield/g, ''), says, `${context}: the message does not say what happened\n${describeRun(r)}`);
}

// ---------------------------------------------------------------------------
// etcd helpers

function bigClient(hosts: string | string[]): Etcd3 {
  return new Etcd3({ hosts, grpcOptions: { 'grpc.max_receive_message_length': 256 * 1024 * 1024 } });
}

function rangeOf(prefix: string): { key: Buffer; range_end: Buffer } {
  if (prefix === '') return { key: Buffer.from([0]), range_end: Buffer.from([0]) };
  const end = Buffer.from(prefix);
  end[end.length - 1]!++;
  return { key: Buffer.from(prefix), range_end: end };
}


/** key → value (both hex) under a prefix. */
async function contents(client: Etcd3, prefix: string): Promise<Map<string, string>> {
  const r = await client.kv.range(rangeOf(prefix));
  return new Map(r.kvs.map((kv) => [kv.key.toString('hex'), kv.value.toString('hex')]));
}

function asMap(records: { key: Buffer; value: Buffer }[]): Map<string, string> {
  return new Map(records.map((r) => [r.key.toString('hex'), r.value.toString('hex')]));
}

function encodeArchive(records: KeyRecord[], prefix: string): Buffer {
  const enc = new NativeEncoder();
  const sorted = [...records].sort((a, b) => Buffer.compare(a.key, b.key));
  return Buffer.concat([
    enc.start({ tool: 'faults test', revision: '100', prefix, clusterId: '1', memberId: '1', createdAt: '2024-01-01T00:00:00Z' }),
    enc.records(rangeReplyOf(sorted)),
    enc.finish(),
  ]);
}

const rec = (key: string | Buffer, value: string | Buffer): KeyRecord => ({
  key: Buffer.from(key),
  value: Buffer.from(value),
  createRevision: '2',
  modRevision: '3',
  version: '1',
  lease: '0',
});

let tmp: string;
let fileNo = 0;
function tempFile(bytes: Buffer): string {
  const p = path.join(tmp, `archive-${++fileNo}`);
  fs.writeFileSync(p, bytes);
  return p;
}

/** The records of an archive, as a key → value map, after a full verification. */
async function archiveContents(bytes: Buffer): Promise<Map<string, string>> {
  const file = tempFile(bytes);
  await verifyArchive(file);
  const m = new Map<string, string>();
  await scanArchive(file, (items) => {
    for (const i of items) if (i.kind === 'record') m.set(i.record.key.toString('hex'), i.record.value.toString('hex'));
  });
  return m;
}

async function assertRefused(bytes: Buffer, context: string): Promise<void> {
  if (bytes.length === 0) return;
  assert.deepEqual(bytes.subarray(0, MAGIC.length), MAGIC, `${context}: the output is not the start of an archive`);
  await assert.rejects(verifyArchive(tempFile(bytes)), ArchiveError, `${context}: a failed backup produced an archive that verifies`);
}

const digest = (m: Map<string, string>) => createHash('sha256').update(JSON.stringify([...m].sort())).digest('hex');

// ---------------------------------------------------------------------------
// One single-member cluster for most tests; others start their own.

const BIG_KEYS = 50_000;
let main: EtcdCluster;
let client: Etcd3;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-shield-faults-'));
  main = await startEtcd({});
  client = bigClient(main.url);
  await putMany(
    client,
    Array.from({ length: BIG_KEYS }, (_, i) => ({ key: Buffer.from(`/big/${String(i).padStart(6, '0')}`), value: Buffer.alloc(120, `${i % 10}`) })),
  );
});

after(async () => {
  killStartedClis();
  client?.close();
  await main?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const backupArgs = (url: string) => ['backup', '--endpoints', url, '--prefix', '/big/', '--page-bytes', '65536', '--timeout', '5'];

// ---------------------------------------------------------------------------
// Server killed and restarted

test('etcd killed and restarted mid-backup: success with a correct archive, or a clear error and no trailer; a re-run succeeds', { timeout: 120_000 }, async (t) => {
  const expected = await contents(client, '/big/');
  const run = startCli(backupArgs(main.url), { holdStdout: true });
  await run.firstBytes;
  const node = main.nodes[0]!;
  await node.kill();
  // The backup runs on into a dead server, which comes back shortly.
  run.child.stdout.resume();
  await sleep(500);
  // No health check: its Range would count as one of the backup's below.
  await node.start({ wait: 'port' });
  const r = await run.exit;
  const context = `backup across an etcd restart\n${describeRun(r)}`;
  assertSuccessOrClearError(r, context, /etcd|connect|answer|unavailable/i);
  t.diagnostic(`outcome: ${outcome(r)}`);
  // A success must have read pages from the restarted etcd, or the kill came after the last page.
  const readAfter = await callsAnswered(node.clientUrl, 'Range');
  t.diagnostic(`Ranges the restarted etcd answered: ${readAfter}`);
  if (r.code === 0) assert.ok(readAfter > 0, `${context}: the backup read nothing from the restarted etcd, so the kill missed it`);
  if (r.code === 0) assert.equal(digest(await archiveContents(r.stdout)), digest(expected), `${context}: the archive is not the keyspace`);
  else await assertRefused(r.stdout, context);

  const again = await runCli(backupArgs(main.url), { timeoutMs: 120_000 });
  assert.equal(again.code, 0, describeRun(again));
  assert.equal(digest(await archiveContents(again.stdout)), digest(expected), 'the re-run archive is not the keyspace');
});

test('with RBAC, the auth token expires while a backup waits for its reader: the backup logs in again and completes', { timeout: 120_000 }, async () => {
  const user = { name: 'reader', password: 'Reader-pw-3071' };
  const etcd = await startEtcd({
    rbac: { rootPassword: 'Root-pw-5512', users: [{ ...user, readPrefix: '/big/' }] },
    // etcd forgets a simple token unused for this many seconds (a restart does not: it replays the login).
    extraArgs: ['--auth-token-ttl', '1'],
  });
  const root = new Etcd3({ hosts: etcd.url, auth: { username: 'root', password: 'Root-pw-5512' }, grpcOptions: { 'grpc.max_receive_message_length': 256 * 1024 * 1024 } });
  try {
    // Enough data that the backup is still reading when its output is held.
    await putMany(root, Array.from({ length: 40_000 }, (_, i) => ({ key: Buffer.from(`/big/${String(i).padStart(6, '0')}`), value: Buffer.alloc(200, `${i % 7}`) })));
    const expected = await contents(root, '/big/');
    const run = startCli([...backupArgs(etcd.url), '--username', `${user.name}:${user.password}`], { holdStdout: true });
    await run.firstBytes;
    await sleep(3000);
    const refusedBefore = await callsAnswered(etcd.url, 'Range', 'Unauthenticated');
    run.child.stdout.resume();
    const r = await run.exit;
    assert.equal(r.code, 0, describeRun(r));
    // Only the backup read meanwhile: a refusal for the expired token shows it still had pages to read.
    const refused = (await callsAnswered(etcd.url, 'Range', 'Unauthenticated')) - refusedBefore;
    assert.ok(refused > 0, `etcd refused no read for an expired token: the expiry missed the backup\n${describeRun(r)}`);
    assert.equal(digest(await archiveContents(r.stdout)), digest(expected), 'the archive is not the keyspace');
  } finally {
    root.close();
    await etcd.stop();
  }
});

test('with RBAC, the auth token expires between two restore transactions: the writer logs in again', { timeout: 60_000 }, async () => {
  const user = { name: 'writer', password: 'Writer-pw-8824' };
  const etcd = await startEtcd({
    rbac: { rootPassword: 'Root-pw-5512', users: [{ ...user, readwritePrefix: '/w/' }] },
    extraArgs: ['--auth-token-ttl', '1'],
  });
  const conn = connect(resolveConfig({ url: etcd.url, auth: AUTH_RBAC, username: user.name, password: user.password }).config);
  try {
    const writer = new BatchWriter(conn, { maxOps: 4, maxBytes: 1 << 20, concurrency: 2 }, 'write', '/w/');
    await writer.put(Buffer.from('/w/1'), Buffer.from('one'), '0');
    await writer.flush();
    await sleep(3000);
    const refusedBefore = await callsAnswered(etcd.url, 'Txn', 'Unauthenticated');
    await writer.put(Buffer.from('/w/2'), Buffer.from('two'), '0');
    await writer.flush();
    assert.equal(writer.stats.puts, 2);
    assert.ok((await callsAnswered(etcd.url, 'Txn', 'Unauthenticated')) > refusedBefore, 'etcd did not refuse the second transaction for its expired token');
    assert.equal(String(await conn.client.get('/w/2')), 'two');
  } finally {
    conn.close();
    await etcd.stop();
  }
});

const RS_KEYS = 20_000;
function restoreRecords(prefix: string, n = RS_KEYS): KeyRecord[] {
  return Array.from({ length: n }, (_, i) => rec(`${prefix}k${String(i).padStart(6, '0')}`, `archived ${i} `.padEnd(100, '.')));
}

async function resetArea(c: Etcd3, prefix: string): Promise<void> {
  await c.delete().prefix(prefix);
  await putMany(c, [
    ...Array.from({ length: 20 }, (_, i) => ({ key: Buffer.from(`${prefix}extra-${i}`), value: Buffer.from('not in the archive') })),
    ...Array.from({ length: 20 }, (_, i) => ({ key: Buffer.from(`${prefix}k${String(i * 7).padStart(6, '0')}`), value: Buffer.from('stale value') })),
  ]);
}

/** After a failed restore with overwrite: no key was deleted, and every archive key present holds the archive's value or its old one. */
async function assertNothingLost(c: Etcd3, prefix: string, records: KeyRecord[], context: string): Promise<void> {
  const now = await contents(c, prefix);
  for (let i = 0; i < 20; i++) {
    assert.ok(now.has(Buffer.from(`${prefix}extra-${i}`).toString('hex')), `${context}: ${prefix}extra-${i} was deleted by a restore that failed`);
  }
  const archived = asMap(records);
  const stale = Buffer.from('stale value').toString('hex');
  for (const [k, v] of now) {
    if (Buffer.from(k, 'hex').toString().startsWith(`${prefix}extra-`)) continue;
    assert.ok(v === archived.get(k) || v === stale, `${context}: ${Buffer.from(k, 'hex').toString()} holds a value from nowhere`);
  }
}

async function assertConverges(c: Etcd3, args: string[], prefix: string, records: KeyRecord[], context: string): Promise<void> {
  const again = await runCli(args, { timeoutMs: 120_000 });
  assert.equal(again.code, 0, `${context}: the re-run failed\n${describeRun(again)}`);
  assert.deepEqual(await contents(c, prefix), asMap(records), `${context}: the re-run did not converge to the archive`);
}

test('etcd killed and restarted mid-restore: success or a clear error, nothing lost; a re-run converges', { timeout: 120_000 }, async (t) => {
  const records = restoreRecords('/kr/');
  const file = tempFile(encodeArchive(records, '/kr/'));
  await resetArea(client, '/kr/');
  await client.put('/kr-outside').value('outside');
  const args = ['restore', '--endpoints', main.url, '--prefix', '/kr/', '--overwrite', '--in', file, '--timeout', '5', '--concurrency', '2', '--batch-ops', '64'];
  // Stopped at its first key, with more than two transactions of 64 left: the kill falls mid-write.
  const run = await restoreStoppedAtFirstKey(client, '/kr/k', RS_KEYS, 2 * 64 + 1, () => startCli(args));
  const node = main.nodes[0]!;
  await node.kill();
  run.child.kill('SIGCONT');
  await sleep(500);
  await node.start();
  const r = await run.exit;
  const context = `restore across an etcd restart\n${describeRun(r)}`;
  assertSuccessOrClearError(r, context, /etcd|connect|answer|unavailable/i);
  t.diagnostic(`outcome: ${outcome(r)}`);
  if (r.code === 0) assert.deepEqual(await contents(client, '/kr/'), asMap(records), `${context}: the keyspace is not the archive`);
  else await assertNothingLost(client, '/kr/', records, context);
  assert.equal(await client.get('/kr-outside').string(), 'outside');
  await assertConverges(client, args, '/kr/', records, context);
  assert.equal(await client.get('/kr-outside').string(), 'outside');
});

// ---------------------------------------------------------------------------
// Compaction of the pinned revision

test('the pinned revision compacted mid-backup: a clear message about compaction, no trailer; a re-run succeeds', { timeout: 120_000 }, async () => {
  const run = startCli(backupArgs(main.url), { holdStdout: true });
  await run.firstBytes;
  // The backup is held on a full pipe with pages still to read; move on and compact past its revision.
  const put = await client.put('/compaction-marker').value(String(Date.now())).exec();
  const compact = await main.etcdctl(['compact', put.header.revision], { check: true });
  assert.match(compact.stdout.toString(), /compacted revision/);
  run.child.stdout.resume();
  const r = await run.exit;
  const context = `backup across a compaction\n${describeRun(r)}`;
  assert.equal(r.code, ExitCode.failure, context);
  assertNoCrash(r, context);
  assert.match(r.stderr, /compact/i, context);
  assert.doesNotMatch(r.stderr, /backup done/, context);
  await assertRefused(r.stdout, context);

  const expected = await contents(client, '/big/');
  const again = await runCli(backupArgs(main.url), { timeoutMs: 120_000 });
  assert.equal(again.code, 0, describeRun(again));
  assert.equal(digest(await archiveContents(again.stdout)), digest(expected));
});

// ---------------------------------------------------------------------------
// Backend quota (NOSPACE)

test('backend quota exceeded mid-restore: a message naming the NOSPACE alarm and how to clear it; after clearing, a re-run converges', { timeout: 180_000 }, async () => {
  const QUOTA = 16 * 1024 * 1024;
  await withEtcd({ extraArgs: [`--quota-backend-bytes=${QUOTA}`] }, async (c) => {
    const qc = bigClient(c.url);
    try {
      await resetArea(qc, '/app/');
      await qc.put('/keep').value('outside the prefix');
      // Fill the backend until less than the archive's second transaction is left, but more than its first.
      const settledSize = async () => {
        let last = -1;
        for (;;) {
          await sleep(150); // etcd updates its size when it commits (every 100 ms)
          const s = Number((await qc.maintenance.status()).dbSize);
          if (s === last) return s;
          last = s;
        }
      };
      const junk = Buffer.alloc(50 * 1024, 'j');
      let n = 0;
      for (let size = await settledSize(); size < QUOTA - 600 * 1024; size = await settledSize()) {
        const add = Math.max(1, Math.floor((QUOTA - 450 * 1024 - size) / junk.length / 2));
        for (let i = 0; i < add; i++) await qc.put(`/junk/${String(n++).padStart(5, '0')}`).value(junk);
      }
      // 50 small keys (one small transaction), then 40 keys of 100 KiB.
      const records = [
        ...Array.from({ length: 50 }, (_, i) => rec(`/app/a${String(i).padStart(3, '0')}`, `small ${i}`)),
        ...Array.from({ length: 40 }, (_, i) => rec(`/app/b${String(i).padStart(3, '0')}`, Buffer.alloc(100 * 1024, `${i % 10}`))),
      ];
      const file = tempFile(encodeArchive(records, '/app/'));
      const args = ['restore', '--endpoints', c.url, '--prefix', '/app/', '--overwrite', '--in', file, '--batch-ops', '50'];
      const r = await runCli(args, { timeoutMs: 120_000 });
      const context = `restore into a full backend\n${describeRun(r)}`;
      assert.equal(r.code, ExitCode.failure, context);
      assertNoCrash(r, context);
      assert.match(r.stderr, /NOSPACE/, context);
      assert.match(r.stderr, /alarm disarm/, context);
      assert.match(r.stderr, /stopped after writing at least \d+ keys and deleting 0/, context);
      await assertNothingLost(qc, '/app/', records, context);
      assert.equal(await qc.get('/keep').string(), 'outside the prefix');
      assert.equal((await qc.getAll().prefix('/junk/').count()), n, `${context}: junk keys outside the prefix were touched`);

      // Do what the message says: free space, compact, defragment, disarm.
      await qc.delete().prefix('/junk/');
      const rev = (await qc.kv.range({ key: Buffer.from('/keep') })).header.revision;
      await c.etcdctl(['compact', rev], { check: true });
      await c.etcdctl(['defrag'], { check: true });
      await c.etcdctl(['alarm', 'disarm'], { check: true });
      await assertConverges(qc, args, '/app/', records, context);
      assert.equal(await qc.get('/keep').string(), 'outside the prefix');
    } finally {
      qc.close();
    }
  });
});

// ---------------------------------------------------------------------------
// --max-request-bytes

test('a small --max-request-bytes: restore splits its transactions and succeeds; a value too large fails naming its key', { timeout: 120_000 }, async () => {
  await withEtcd({ extraArgs: ['--max-request-bytes=65536'] }, async (c) => {
    const mc = bigClient(c.url);
    try {
      // One oversized value among small ones: refused, naming the key, nothing deleted.
      const withOne = [
        ...Array.from({ length: 30 }, (_, i) => rec(`/mr/s${String(i).padStart(3, '0')}`, `small ${i}`)),
        rec('/mr/too-big', Buffer.alloc(100 * 1024, 'x')),
      ];
      await resetArea(mc, '/mr/');
      const args1 = ['restore', '--endpoints', c.url, '--prefix', '/mr/', '--overwrite', '--in', tempFile(encodeArchive(withOne, '/mr/'))];
      for (let attempt = 1; attempt <= 2; attempt++) {
        const r = await runCli(args1);
        const context = `one 100 KiB value, attempt ${attempt}\n${describeRun(r)}`;
        assert.equal(r.code, ExitCode.failure, context);
        assertNoCrash(r, context);
        assert.match(r.stderr, /\/mr\/too-big/, context);
        assert.match(r.stderr, /max-request-bytes/, context);
        await assertNothingLost(mc, '/mr/', withOne, context);
      }
    } finally {
      mc.close();
    }
  });
});

test(
  'a small --max-request-bytes with many large values: batches adapt, and a too-large value fails naming its key',
  { timeout: 120_000 },
  async () => {
    await withEtcd({ extraArgs: ['--max-request-bytes=65536'] }, async (c) => {
      const mc = bigClient(c.url);
      try {
        // 40 values of 20 KiB: each fits, 1 MiB batches do not.
        const fitting = Array.from({ length: 40 }, (_, i) => rec(`/mr/f${String(i).padStart(3, '0')}`, Buffer.alloc(20 * 1024, `${i % 10}`)));
        await resetArea(mc, '/mr/');
        const args = ['restore', '--endpoints', c.url, '--prefix', '/mr/', '--overwrite', '--in', tempFile(encodeArchive(fitting, '/mr/'))];
        const tooLargeBefore = await callsAnswered(c.url, 'Txn', 'InvalidArgument');
        const r = await runCli(args);
        assert.equal(r.code, 0, `20 KiB values under a 64 KiB limit\n${describeRun(r)}`);
        // "request is too large" is InvalidArgument: the restore met the limit and split, rather than fitting by chance.
        assert.ok((await callsAnswered(c.url, 'Txn', 'InvalidArgument')) > tooLargeBefore, `etcd refused no transaction as too large\n${describeRun(r)}`);
        assert.deepEqual(await contents(mc, '/mr/'), asMap(fitting));
        await assertConverges(mc, args, '/mr/', fitting, 'fitting values');

        // Ten values of 100 KiB: none fits; the error names the first.
        const tooBig = Array.from({ length: 10 }, (_, i) => rec(`/mr/big${i}`, Buffer.alloc(100 * 1024, 'x')));
        await resetArea(mc, '/mr/');
        const r2 = await runCli(['restore', '--endpoints', c.url, '--prefix', '/mr/', '--overwrite', '--in', tempFile(encodeArchive(tooBig, '/mr/'))]);
        const context = `100 KiB values under a 64 KiB limit\n${describeRun(r2)}`;
        assert.equal(r2.code, ExitCode.failure, context);
        assertNoCrash(r2, context);
        assert.match(r2.stderr, /\/mr\/big\d/, context);
        assert.match(r2.stderr, /max-request-bytes/, context);
        await assertNothingLost(mc, '/mr/', tooBig, context);
      } finally {
        mc.close();
      }
    });
  },
);

// ---------------------------------------------------------------------------
// A slow (SIGSTOPped) member of a 3-member cluster

test('a member SIGSTOPped for a few seconds in a 3-member cluster: backup and restore succeed or fail clearly; re-runs converge', { timeout: 180_000 }, async (t) => {
  await withEtcd({ members: 3 }, async (c) => {
    const cc = bigClient(c.endpoints);
    try {
      await putMany(cc, Array.from({ length: 5000 }, (_, i) => ({ key: Buffer.from(`/slow/src/${String(i).padStart(5, '0')}`), value: Buffer.alloc(100, 's') })));
      // Which member leads: ask each one.
      let leaderIndex = 0;
      for (const [i, ep] of c.endpoints.entries()) {
        const one = new Etcd3({ hosts: ep });
        try {
          const st = await one.maintenance.status();
          if (st.leader === st.header.member_id) leaderIndex = i;
        } finally {
          one.close();
        }
      }
      const leader = c.nodes[leaderIndex]!;

      // Restore while the leader is stopped for 3 s.
      const records = restoreRecords('/slow/rs/', 10_000);
      const file = tempFile(encodeArchive(records, '/slow/rs/'));
      await resetArea(cc, '/slow/rs/');
      const args = ['restore', '--endpoints', c.url, '--prefix', '/slow/rs/', '--overwrite', '--in', file, '--concurrency', '2', '--batch-ops', '32'];
      // Stopped at its first key with more than two transactions of 32 left, so it writes on while the leader is stopped.
      const run = await restoreStoppedAtFirstKey(cc, '/slow/rs/k', records.length, 2 * 32 + 1, () => startCli(args));
      leader.pause();
      run.child.kill('SIGCONT');
      await sleep(3000);
      leader.resume();
      const r = await run.exit;
      const context = `restore with a stopped leader\n${describeRun(r)}`;
      assertSuccessOrClearError(r, context, /etcd|leader|connect|answer|unavailable|timed out/i);
      t.diagnostic(`restore outcome: ${outcome(r)}`);
      if (r.code !== 0) await assertNothingLost(cc, '/slow/rs/', records, context);
      await assertConverges(cc, args, '/slow/rs/', records, context);

      // Backup while a member is stopped: the client must get its pages from the others, or say why not.
      const expected = await contents(cc, '/slow/src/');
      const victim = c.nodes[(leaderIndex + 1) % 3]!;
      victim.pause();
      let b: CliResult;
      try {
        // Small pages: some 30 requests, each to a member picked at random, so the stopped one is all but sure to get some.
        b = await runCli(['backup', '--endpoints', c.url, '--prefix', '/slow/src/', '--page-bytes', '16384', '--timeout', '2'], { timeoutMs: 120_000 });
      } finally {
        victim.resume();
      }
      const bContext = `backup with a stopped member\n${describeRun(b)}`;
      assertSuccessOrClearError(b, bContext, /etcd|connect|answer|unavailable|timed out/i);
      t.diagnostic(`backup outcome: ${outcome(b)}`);
      assert.match(b.stderr, new RegExp(`warning: etcd member ${victim.clientUrl} failed`), `${bContext}: the backup never met the stopped member`);
      if (b.code === 0) assert.equal(digest(await archiveContents(b.stdout)), digest(expected), `${bContext}: the archive is not the keyspace`);
      else await assertRefused(b.stdout, bContext);
      const again = await runCli(['backup', '--endpoints', c.url, '--prefix', '/slow/src/'], { timeoutMs: 120_000 });
      assert.equal(again.code, 0, describeRun(again));
      assert.equal(digest(await archiveContents(again.stdout)), digest(expected));
    } finally {
      cc.close();
    }
  });
});

// ---------------------------------------------------------------------------
// Idempotence and convergence (issue 5, part 4)

test('restoring the same archive twice gives the same keyspace, leases included', { timeout: 120_000 }, async () => {
  // A real backup of keys with and without leases.
  const lease = client.lease(3600, { autoKeepAlive: false });
  const leaseId = await lease.grant();
  await client.delete().prefix('/idem/');
  await putMany(client, Array.from({ length: 300 }, (_, i) => ({ key: Buffer.from(`/idem/${String(i).padStart(4, '0')}`), value: Buffer.from(`v${i}`) })));
  for (let i = 0; i < 5; i++) await lease.put(`/idem/leased-${i}`).value(`l${i}`);
  const backup = await runCli(['backup', '--endpoints', main.url, '--prefix', '/idem/']);
  assert.equal(backup.code, 0, describeRun(backup));
  const archive = tempFile(backup.stdout);
  const original = await contents(client, '/idem/');

  // Drift: changed, added and removed keys; the lease is gone.
  await client.put('/idem/0001').value('changed');
  await client.put('/idem/new').value('added');
  await client.delete().key('/idem/0002');
  await lease.revoke();

  const state = async () => {
    const r = await client.kv.range(rangeOf('/idem/'));
    return r.kvs.map((kv) => `${kv.key.toString()}=${kv.value.toString()} leased=${kv.lease !== '0'}`);
  };
  const args = ['restore', '--endpoints', main.url, '--prefix', '/idem/', '--overwrite', '--in', archive];
  const first = await runCli(args);
  assert.equal(first.code, 0, describeRun(first));
  const afterFirst = await state();
  assert.deepEqual(await contents(client, '/idem/'), original);
  const second = await runCli(args);
  assert.equal(second.code, 0, describeRun(second));
  assert.deepEqual(await state(), afterFirst, 'the second restore changed the keyspace');
  assert.equal(afterFirst.filter((s) => s.endsWith('leased=true')).length, 5, 'leased keys did not come back with a lease');
  // Cleanup: the restored lease would outlive the test.
  const leased = await client.kv.range({ key: Buffer.from('/idem/leased-0') });
  if (leased.kvs[0] && leased.kvs[0].lease !== '0') await client.leaseClient.leaseRevoke({ ID: leased.kvs[0].lease }).catch(() => undefined);
  void leaseId;
});

test('overwrite with a prefix never touches keys outside it, whatever the archive holds', { timeout: 180_000 }, async () => {
  // Keys on every side of the prefixes: "/p" vs "/p/", "/p0", "/o\xff", 0xff bytes, 0x00.
  const pool = ['/p', '/p/', '/p/a', '/p/b/c', '/p/bc', '/p0', '/pa', '/o', '/o\xff', '/q', 'p', '/p/\xff', '/p\xff', '\xff', '\xff\xff', '\x00'].map((s) =>
    Buffer.from(s, 'latin1'),
  );
  const baseline = pool.map((k, i) => ({ key: k, value: Buffer.from(`cluster-${i}`) }));
  const prefixes = ['', '/p', '/p/', '/p/b', '/o', '/q'];
  const scenario = fc.record({
    archiveKeys: fc.subarray(pool),
    // Usually an archive as a backup writes it (keys under its prefix); now and then a hand-made one with stray keys.
    strayKeys: fc.integer({ min: 0, max: 3 }).map((n) => n === 0),
    archivePrefix: fc.constantFrom(...prefixes),
    restorePrefix: fc.constantFrom(...prefixes.filter((p) => p !== '')),
    values: fc.array(fc.uint8Array({ maxLength: 12 }), { minLength: pool.length, maxLength: pool.length }),
  });
  const starts = (k: Buffer, p: Buffer) => k.length >= p.length && k.subarray(0, p.length).equals(p);
  /** Every key in etcd with its mod revision and lease (keys only: the keyspace holds 50k other keys), plus the pool's values. */
  const state = async () => {
    const all = await client.kv.range({ key: Buffer.from([0]), range_end: Buffer.from([0]), keys_only: true });
    const values = await client.kv.txn({ compare: [], success: pool.map((k) => ({ request_range: { key: k } })), failure: [] });
    const poolValues = new Map<string, string>();
    for (const op of values.responses) for (const kv of op.response_range.kvs) poolValues.set(kv.key.toString('hex'), kv.value.toString('hex'));
    return all.kvs.map((kv) => ({ key: kv.key, line: `${kv.key.toString('hex')} mod=${kv.mod_revision} lease=${kv.lease} value=${poolValues.get(kv.key.toString('hex')) ?? '-'}` }));
  };
  await fc.assert(
    fc.asyncProperty(scenario, async (s) => {
      // The archive may hold keys outside its own header prefix: hand-made or damaged, with a valid checksum.
      const archivePrefixKey = Buffer.from(s.archivePrefix);
      const keys = s.strayKeys ? s.archiveKeys : s.archiveKeys.filter((k) => starts(k, archivePrefixKey));
      const records = keys.map((k, i) => rec(k, Buffer.from(s.values[i]!)));
      const file = tempFile(encodeArchive(records, s.archivePrefix));
      await client.kv.txn({ compare: [], success: pool.map((k) => ({ request_delete_range: { key: k } })), failure: [] });
      await client.kv.txn({ compare: [], success: baseline.map((b) => ({ request_put: { key: b.key, value: b.value } })), failure: [] });
      const prefixKey = Buffer.from(s.restorePrefix);
      const outside = async () => (await state()).filter((x) => !starts(x.key, prefixKey)).map((x) => x.line);
      const outsideBefore = await outside();
      const insideBefore = await contents(client, s.restorePrefix);
      const r = await runCli(['restore', '-e', JSON.stringify({ url: main.url, prefix: s.restorePrefix, overwrite: true }), '--in', file]);
      const context = `${JSON.stringify({ ...s, values: undefined, archiveKeys: keys.map((k) => k.toString('latin1')) })}\n${describeRun(r)}`;
      assertNoCrash(r, context);
      assert.deepEqual(await outside(), outsideBefore, `${context}: keys outside prefix ${JSON.stringify(s.restorePrefix)} changed`);
      if (r.code !== 0) {
        // Refused: disjoint prefixes, or keys outside the archive's own prefix. Then nothing changed at all.
        assert.equal(r.code, ExitCode.failure, context);
        const disjoint = !s.restorePrefix.startsWith(s.archivePrefix) && !s.archivePrefix.startsWith(s.restorePrefix);
        const stray = records.some((x) => !starts(x.key, archivePrefixKey));
        assert.ok(disjoint || stray, `${context}: a consistent archive was refused`);
        assert.deepEqual(await contents(client, s.restorePrefix), insideBefore, `${context}: a refused restore changed the prefix`);
        return;
      }
      // Inside the prefix: in the restore scope (the more specific prefix) exactly the archive's keys; elsewhere what was there.
      const scope = s.restorePrefix.startsWith(s.archivePrefix) ? prefixKey : archivePrefixKey;
      const expected = new Map<string, string>();
      for (const b of baseline) if (starts(b.key, prefixKey) && !starts(b.key, scope)) expected.set(b.key.toString('hex'), b.value.toString('hex'));
      for (const x of records) if (starts(x.key, scope)) expected.set(x.key.toString('hex'), x.value.toString('hex'));
      const inside = await contents(client, s.restorePrefix);
      assert.deepEqual(inside, expected, `${context}: the prefix does not hold what the archive says`);
    }),
    { numRuns: 12 },
  );
});

test(
  'an archive holding keys outside its own prefix is refused, or restored with every stale key in scope deleted',
  { timeout: 60_000 },
  async () => {
    // The archive says prefix "/s/b" but (hand-made or damaged, checksum intact) also holds "/s/a".
    const file = tempFile(encodeArchive([rec('/s/a', 'archived'), rec('/s/b/1', 'archived')], '/s/b'));
    await client.delete().prefix('/s');
    await putMany(client, [
      { key: Buffer.from('/s/a'), value: Buffer.from('outside the scope') },
      { key: Buffer.from('/s/b/stale'), value: Buffer.from('stale') },
    ]);
    const r = await runCli(['restore', '--endpoints', main.url, '--prefix', '/s', '--overwrite', '--in', file]);
    assertNoCrash(r, describeRun(r));
    if (r.code !== 0) {
      // Refusing such an archive is fine too, if nothing changed.
      assert.equal(r.code, ExitCode.failure, describeRun(r));
      assert.deepEqual(await contents(client, '/s'), asMap([rec('/s/a', 'outside the scope'), rec('/s/b/stale', 'stale')]));
      return;
    }
    assert.deepEqual(
      await contents(client, '/s'),
      asMap([rec('/s/a', 'outside the scope'), rec('/s/b/1', 'archived')]),
      `the scope "/s/b" does not hold exactly the archive's keys\n${describeRun(r)}`,
    );
  },
);
