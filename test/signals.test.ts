// Signals and broken pipes against a real etcd, through the real CLI (issue 5, part 2).
//
// No test relies on timing: a backup is held still by not reading its stdout
// (it blocks once its 4 MiB write buffer and the pipe are full), a restore is
// held still by SIGSTOPping etcd while one of its transactions is in flight,
// and each signal is sent only once the CLI has shown it is in the phase under
// test (first archive bytes, first restored key, its spool file).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Etcd3 } from 'etcd3';
import { NativeEncoder } from '../src/archive/native-encode';
import { rangeReplyOf } from './range-reply';
import { MAGIC } from '../src/archive/native-format';
import { verifyArchive } from '../src/archive/verify';
import type { KeyRecord } from '../src/archive/types';
import { ArchiveError, ExitCode } from '../src/errors';
import { assertNoCrash, binPath, childEnv, describeRun, killStartedClis, runCli, startCli } from './cli';
import { putMany } from './etcd-data';
import { startEtcd, type EtcdCluster } from './harness';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Whether a thread of the process waits in the kernel for room in a full pipe or socket (Linux). */
function blockedWriting(pid: number): boolean {
  try {
    const threads = fs.readdirSync(`/proc/${pid}/task`);
    return threads.some((t) => /pipe_write|sock_alloc_send/.test(fs.readFileSync(`/proc/${pid}/task/${t}/wchan`, 'utf8')));
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------
// One etcd for the file: 50k keys under /big/ (about 6.6 MB, more than the
// backup's write buffer), and room under /rs/ for restores.

const BIG_KEYS = 50_000;
const BIG_VALUE = Buffer.alloc(120, 'v');
let cluster: EtcdCluster;
let client: Etcd3;
let tmp: string;


async function keysUnder(prefix: string): Promise<Map<string, string>> {
  const end = Buffer.from(prefix);
  end[end.length - 1]!++;
  const r = await client.kv.range({ key: Buffer.from(prefix), range_end: end });
  return new Map(r.kvs.map((kv) => [kv.key.toString('utf8'), kv.value.toString('utf8')]));
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-shield-signals-'));
  cluster = await startEtcd({});
  client = new Etcd3({ hosts: cluster.url });
  await putMany(client, Array.from({ length: BIG_KEYS }, (_, i) => ({ key: Buffer.from(`/big/${String(i).padStart(6, '0')}`), value: BIG_VALUE })));
});

after(async () => {
  killStartedClis();
  client?.close();
  await cluster?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------
// Backup

async function assertRejectedArchive(bytes: Buffer, context: string): Promise<void> {
  assert.ok(bytes.length > 0, `${context}: no output at all`);
  assert.deepEqual(bytes.subarray(0, MAGIC.length), MAGIC, `${context}: the output is not the start of an archive`);
  const file = path.join(tmp, `partial-${Date.now()}-${Math.random()}.archive`);
  fs.writeFileSync(file, bytes);
  await assert.rejects(verifyArchive(file), (err: unknown) => err instanceof ArchiveError && /truncated|no trailer/.test(err.message), context);
  const v = await runCli(['verify', '--in', file]);
  assert.equal(v.code, ExitCode.failure, `${context}: verify accepted the partial archive\n${describeRun(v)}`);
  assert.match(v.stderr, /truncated|no trailer/, describeRun(v));
  fs.rmSync(file, { force: true });
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  test(`${signal} during backup: non-zero exit, an archive without trailer that verify refuses`, { timeout: 120_000 }, async () => {
    const run = startCli(['backup', '--endpoints', cluster.url, '--prefix', '/big/', '--page-bytes', '65536'], { holdStdout: true });
    await run.firstBytes;
    run.child.kill(signal);
    // Only once the CLI has seen the signal does the held stdout flow again.
    await run.waitStderr(new RegExp(`${signal} received`));
    run.child.stdout.resume();
    const r = await run.exit;
    const context = `${signal} during backup\n${describeRun(r)}`;
    assert.notEqual(r.code, 0, context);
    assert.equal(r.code, ExitCode.failure, context);
    assertNoCrash(r, context);
    assert.match(r.stderr, /incomplete|no trailer/, context);
    assert.doesNotMatch(r.stderr, /backup done/, context);
    await assertRejectedArchive(r.stdout, context);
  });
}

/** Part files a backup to `--out <dir>/name` may have left beside it. */
const partsOf = (file: string) => fs.readdirSync(path.dirname(file)).filter((f) => f.startsWith(`.${path.basename(file)}.`) && f.endsWith('.part'));

for (const signals of [1, 2]) {
  test(`${signals === 1 ? 'SIGINT' : 'two SIGINTs'} during backup --out FILE: the file keeps its previous archive, and no part file is left`, { timeout: 120_000 }, async () => {
    const file = path.join(tmp, `kept-${signals}.archive`);
    fs.writeFileSync(file, 'the previous archive');
    const run = startCli(['backup', '--endpoints', cluster.url, '--prefix', '/big/', '--page-bytes', '65536', '--timeout', '60', '--out', file]);
    // The part file appears before the first request; etcd then stops answering, so the backup is caught mid-way.
    for (let i = 0; i < 1000 && run.child.exitCode === null && partsOf(file).length === 0; i++) await sleep(5);
    const node = cluster.nodes[0]!;
    node.pause();
    try {
      // With etcd stopped the backup cannot finish, so a part file now means the signal falls mid-backup.
      if (run.child.exitCode !== null) assert.fail(`the backup ended before the signal\n${describeRun(await run.exit)}`);
      assert.ok(partsOf(file).length > 0, 'no part file yet: the signal would come before the backup began');
      run.child.kill('SIGINT');
      await run.waitStderr(/SIGINT received/);
      if (signals === 2) run.child.kill('SIGINT');
    } finally {
      node.resume();
    }
    const r = await run.exit;
    const context = `${signals} SIGINT(s) during backup --out\n${describeRun(r)}`;
    assert.notEqual(r.code, 0, context);
    assertNoCrash(r, context);
    assert.equal(fs.readFileSync(file, 'utf8'), 'the previous archive', context);
    assert.deepEqual(partsOf(file), [], context);
  });
}

test('a second SIGINT quits a backup at once, even with its output stuck (it dies of SIGINT: 130 in a shell)', { timeout: 120_000 }, async () => {
  const run = startCli(['backup', '--endpoints', cluster.url, '--prefix', '/big/', '--page-bytes', '65536'], { holdStdout: true });
  await run.firstBytes;
  // The first signal must find the backup stuck on its held output, or it
  // could stop safely by itself: wait until it is (6.6 MB to write).
  for (let i = 0; i < 1000 && run.child.exitCode === null && !blockedWriting(run.child.pid!); i++) await sleep(10);
  assert.ok(blockedWriting(run.child.pid!), 'the backup never blocked on its held output');
  run.child.kill('SIGINT');
  await run.waitStderr(/SIGINT received/);
  // Still held: the first signal cannot have finished the run.
  run.child.kill('SIGINT');
  const r = await run.exit;
  assert.match(r.stderr, /died of SIGINT/, describeRun(r));
  assert.ok(r.stdout.length === 0 || r.stdout.subarray(0, MAGIC.length).equals(MAGIC));
});

test('stdout closed early during backup (the store died): clean non-zero exit, a message, no stack trace', { timeout: 120_000 }, async () => {
  // Our end of the pipe closes after the first chunk.
  const run = startCli(['backup', '--endpoints', cluster.url, '--prefix', '/big/', '--page-bytes', '65536']);
  await run.firstBytes;
  run.child.stdout.destroy();
  const r = await run.exit;
  const context = `stdout closed\n${describeRun(r)}`;
  assert.equal(r.code, ExitCode.failure, context);
  assertNoCrash(r, context);
  assert.match(r.stderr, /broken pipe|went away/i, context);
  assert.doesNotMatch(r.stderr, /backup done/, context);

  // A real reader that exits after 4 KiB: `etcd-shield backup | head -c 4096`.
  const shell = spawn(
    'bash',
    ['-c', '"$@" | head -c 4096 > /dev/null; exit "${PIPESTATUS[0]}"', 'pipeline', process.execPath, binPath, 'backup', '--endpoints', cluster.url, '--prefix', '/big/', '--page-bytes', '65536'],
    { env: childEnv(), stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  shell.stderr.on('data', (b: Buffer) => (err += b.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => shell.once('close', resolve));
  const piped = { code: code ?? -1, stdout: Buffer.alloc(0), stderr: err };
  assert.equal(piped.code, ExitCode.failure, `backup | head -c 4096\n${describeRun(piped)}`);
  assertNoCrash(piped, 'backup | head');
  assert.match(err, /broken pipe|went away/i, describeRun(piped));
});

test('backup into a slow reader (the pipe fills up) waits for it and completes', { timeout: 120_000 }, async () => {
  // The reader takes the first chunk, then nothing until the backup is seen blocked on the full pipe.
  const run = startCli(['backup', '--endpoints', cluster.url, '--prefix', '/big/'], { holdStdout: true });
  await run.firstBytes;
  for (let i = 0; i < 1000 && run.child.exitCode === null && !blockedWriting(run.child.pid!); i++) await sleep(10);
  if (!blockedWriting(run.child.pid!)) {
    run.child.stdout.resume();
    assert.fail(`the backup never waited for its reader\n${describeRun(await run.exit)}`);
  }
  run.child.stdout.resume();
  const r = await run.exit;
  assert.equal(r.code, 0, `backup into a slow reader\n${describeRun(r)}`);
  const out = path.join(tmp, 'slow-reader.archive');
  fs.writeFileSync(out, r.stdout);
  const summary = await verifyArchive(out);
  assert.equal(summary.records, BIG_KEYS);
});

// ---------------------------------------------------------------------------
// Restore

const RS_KEYS = 30_000;

function restoreArchive(): { file: string; records: KeyRecord[] } {
  const records: KeyRecord[] = Array.from({ length: RS_KEYS }, (_, i) => ({
    key: Buffer.from(`/rs/k${String(i).padStart(6, '0')}`),
    value: Buffer.from(`archived value ${i} `.padEnd(100, '.')),
    createRevision: '2',
    modRevision: String(2 + i),
    version: '1',
    lease: '0',
  }));
  const enc = new NativeEncoder();
  const bytes = Buffer.concat([
    enc.start({ tool: 'signals test', revision: String(RS_KEYS + 2), prefix: '/rs/', clusterId: '1', memberId: '1', createdAt: new Date().toISOString() }),
    enc.records(rangeReplyOf(records)),
    enc.finish(),
  ]);
  const file = path.join(tmp, 'restore.archive');
  fs.writeFileSync(file, bytes);
  return { file, records };
}

/** Keys under /rs/ that the archive lacks, and keys outside the prefix: overwrite must delete the first only after writing everything. */
async function resetRestoreArea(): Promise<void> {
  await client.delete().prefix('/rs/');
  await client.delete().prefix('/rs-outside');
  await putMany(client, [
    ...Array.from({ length: 50 }, (_, i) => ({ key: Buffer.from(`/rs/extra-${i}`), value: Buffer.from('not in the archive') })),
    { key: Buffer.from('/rs-outside'), value: Buffer.from('outside the prefix') },
  ]);
}

async function waitForKey(key: string, done: Promise<unknown>): Promise<boolean> {
  let finished = false;
  void done.then(() => (finished = true));
  while (!finished) {
    const r = await client.kv.range({ key: Buffer.from(key), count_only: true });
    if (Number(r.count) > 0) return true;
    await sleep(10);
  }
  return false;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  test(`${signal} during restore --overwrite: non-zero exit, a summary of what was written, nothing deleted; a re-run converges`, { timeout: 120_000 }, async () => {
    const { file, records } = restoreArchive();
    await resetRestoreArea();
    const args = ['restore', '--endpoints', cluster.url, '--prefix', '/rs/', '--overwrite', '--in', file, '--concurrency', '2', '--batch-ops', '64'];
    const run = startCli(args);
    // The first archive key in etcd means the write phase has begun.
    const writing = await waitForKey(records[0]!.key.toString(), run.exit);
    if (!writing) assert.fail(`the restore ended before writing anything\n${describeRun(await run.exit)}`);
    // Hold etcd still so that the signal lands while transactions are in flight.
    const node = cluster.nodes[0]!;
    node.pause();
    try {
      run.child.kill(signal);
      await run.waitStderr(new RegExp(`${signal} received`));
    } finally {
      node.resume();
    }
    const r = await run.exit;
    const context = `${signal} during restore\n${describeRun(r)}`;
    assert.equal(r.code, ExitCode.failure, context);
    assertNoCrash(r, context);
    const summary = /stopped after writing at least (\d+) keys and deleting (\d+)/.exec(r.stderr);
    assert.ok(summary, `${context}: no summary of what was written`);
    assert.equal(summary[2], '0', `${context}: the deletion phase ran`);
    assert.doesNotMatch(r.stderr, /restore done/, context);

    const now = await keysUnder('/rs/');
    for (let i = 0; i < 50; i++) assert.equal(now.get(`/rs/extra-${i}`), 'not in the archive', `${context}: /rs/extra-${i} was deleted`);
    const archived = new Map(records.map((x) => [x.key.toString(), x.value.toString()]));
    let written = 0;
    for (const [k, v] of now) {
      if (k.startsWith('/rs/extra-')) continue;
      assert.equal(v, archived.get(k), `${context}: ${k} holds something the archive does not`);
      written++;
    }
    assert.ok(written < RS_KEYS, `${context}: every key was written, so the signal came too late to test anything`);
    assert.equal(String(written), summary[1], `${context}: the summary says ${summary[1]} keys, etcd holds ${written}`);
    assert.equal((await client.get('/rs-outside').string()), 'outside the prefix');

    // The same restore again finishes the job.
    const again = await runCli(args, { timeoutMs: 120_000 });
    assert.equal(again.code, 0, describeRun(again));
    const final = await keysUnder('/rs/');
    assert.deepEqual(final, archived, 'the re-run did not converge to the archive');
    assert.equal((await client.get('/rs-outside').string()), 'outside the prefix');
  });
}

test('SIGINT while restore reads the archive from stdin: nothing is written to etcd', { timeout: 60_000 }, async () => {
  const { file } = restoreArchive();
  await resetRestoreArea();
  const before = await client.kv.range({ key: Buffer.from([0]), range_end: Buffer.from([0]), count_only: true });
  // A private TMPDIR shows when the CLI has started spooling stdin.
  const spoolRoot = fs.mkdtempSync(path.join(tmp, 'spool-'));
  const run = startCli(['restore', '--endpoints', cluster.url, '--prefix', '/rs/', '--overwrite'], { env: { TMPDIR: spoolRoot } });
  const bytes = fs.readFileSync(file);
  run.child.stdin.write(bytes.subarray(0, 64 * 1024));
  // Wait for the spool file to hold data; stdin stays open, so the CLI is mid-read.
  for (;;) {
    const spooled = fs
      .readdirSync(spoolRoot)
      .map((d) => path.join(spoolRoot, d, 'archive'))
      .some((p) => fs.existsSync(p) && fs.statSync(p).size > 0);
    if (spooled) break;
    const exited = await Promise.race([run.exit.then(() => true), sleep(10).then(() => false)]);
    if (exited) assert.fail(`the restore ended while its stdin was open\n${describeRun(await run.exit)}`);
  }
  run.child.kill('SIGINT');
  const r = await run.exit;
  const context = `SIGINT while spooling\n${describeRun(r)}`;
  assert.equal(r.code, ExitCode.failure, context);
  assertNoCrash(r, context);
  assert.match(r.stderr, /nothing was written/, context);
  const afterRange = await client.kv.range({ key: Buffer.from([0]), range_end: Buffer.from([0]), count_only: true });
  assert.equal(afterRange.header.revision, before.header.revision, `${context}: etcd was written to`);
  assert.deepEqual(fs.readdirSync(spoolRoot), [], 'the spool directory was left behind');
});
