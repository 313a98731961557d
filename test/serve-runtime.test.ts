// The service's schedules, against the real `etcd-shield serve` process, real
// etcd members, a real directory store and the real S3-compatible server:
// runs on ticks, keep rules, no overlap, failures recorded and retried on
// the next tick, a missed run at start-up, and the shutdown's grace period.
import { strict as assert } from 'node:assert';
import { execFile, execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listBackups } from '../src/api/catalogue';
import { binPath, childEnv, runCli } from './cli';
import { type EtcdCluster, freePort, makeTestDir, removeTestDir, startEtcd } from './harness';
import { startS3rver, type S3rver } from './s3rver';
import { runEnds, type ServeProcess, startServe } from './serve-harness';

const S3_ENV = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };
const BUCKET = 'serve-bucket';

let etcd: EtcdCluster;
let s3: S3rver;
let dir: string;
let recipient: string;
const running: ServeProcess[] = [];

before(async () => {
  dir = makeTestDir();
  [etcd, s3] = await Promise.all([startEtcd(), startS3rver({ bucket: BUCKET })]);
  for (let i = 0; i < 200; i++) await etcd.etcdctl(['put', `/app/k${String(i).padStart(3, '0')}`, `value-${i}`]);
  await etcd.etcdctl(['put', '/other/x', 'y']);
  execFileSync('age-keygen', ['-o', join(dir, 'key.txt')], { stdio: 'ignore' });
  recipient = /public key: (age1\w+)/.exec(readFileSync(join(dir, 'key.txt'), 'utf8'))![1]!;
});

after(async () => {
  await Promise.all(running.map((s) => s.stop(5000)));
  await Promise.all([etcd?.stop(), s3?.stop()]);
  await removeTestDir(dir);
});

async function serve(config: (port: number) => string, env: Record<string, string> = {}): Promise<ServeProcess> {
  const s = await startServe({ config, dir, env: { ...S3_ENV, AWS_ENDPOINT_URL_S3: s3.endpoint, ...env } });
  running.push(s);
  return s;
}

const job = (name: string, lines: string[], endpoint = etcd.url) => [`  - name: ${name}`, `    etcd: { url: "${endpoint}", timeout: "10" }`, ...lines.map((l) => `    ${l}`)];
const yaml = (port: number, jobs: string[][], top: string[] = []) => [`listen: 127.0.0.1:${port}`, ...top, 'jobs:', ...jobs.flat(), ''].join('\n');
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('scheduled backups', () => {
  test('two jobs in one process, a directory and S3 (zstd + age): each tick backs up, keep rules prune, the log says what ran', async () => {
    const s = await serve((port) =>
      yaml(port, [
        job('local', ['prefix: /app/', 'to: ./stores/local', 'schedule: "*/2 * * * * *"', 'compress: gzip', 'keep: { last: 2 }']),
        job('remote', [`to: s3://${BUCKET}/etcd/remote`, 'schedule: "*/3 * * * * *"', `encrypt_to: [${recipient}]`]),
      ]),
    );
    const local = await s.waitForCount((l) => l.event === 'end' && l.job === 'local' && l.status === 'succeeded', 4, '4 local backups', 40_000);
    await s.waitForCount((l) => l.event === 'end' && l.job === 'remote' && l.status === 'succeeded', 2, '2 remote backups', 40_000);
    await s.stop();
    assert.deepEqual((await s.exited).code, 0, s.stderr());

    const first = local[0]!;
    assert.equal(first.keys, 200, 'the local job backs up its prefix only');
    assert.ok(typeof first.revision === 'string' && Number(first.revision) > 200, JSON.stringify(first));
    assert.ok((first.bytes as number) > 0 && (first.durationSeconds as number) > 0 && typeof first.run === 'string' && typeof first.backup === 'string');
    assert.ok(local.slice(2).every((l) => l.pruned === 1), `from the third backup on, each run prunes one: ${JSON.stringify(local.map((l) => l.pruned))}`);
    const starts = s.logs().filter((l) => l.event === 'start' && l.job === 'local');
    assert.ok(starts.every((l) => l.trigger === 'schedule' || l.trigger === 'startup'), JSON.stringify(starts));
    // Ticks only: every scheduled start is on an even second.
    for (const l of starts.filter((x) => x.trigger === 'schedule')) assert.equal(new Date(l.time).getUTCSeconds() % 2, 0, l.time);

    const localStore = await listBackups(join(dir, 'stores/local'));
    assert.equal(localStore.backups.length, 2, 'keep last 2');
    assert.ok(localStore.backups.every((b) => b.manifest.compression === 'gzip' && b.manifest.prefix === '/app/'));
    const remote = await listBackups(`s3://${BUCKET}/etcd/remote`, { s3: { endpoint: s3.endpoint, forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }, region: 'us-east-1' } });
    assert.ok(remote.backups.length >= 2);
    assert.ok(remote.backups.every((b) => b.manifest.encryption.type === 'age' && b.manifest.compression === 'zstd' && b.manifest.keys === 201));
    // What the service stored restores with the plain CLI and the age identity.
    const newest = remote.backups.at(-1)!;
    const v = await runCli(['verify', '--from', `s3://${BUCKET}/etcd/remote`, '--backup', newest.name, '--identity', join(dir, 'key.txt'), '--s3-endpoint', s3.endpoint], { env: S3_ENV });
    assert.equal(v.code, 0, v.stderr);
  });

  test('a missed run: at start-up, a job whose newest backup is older than one period runs once; a fresh one does not', async () => {
    const store = join(dir, 'stores/missed');
    const b = await runCli(['backup', '--endpoints', etcd.url, '--to', store, '--compress', 'none']);
    assert.equal(b.code, 0, b.stderr);
    const config = (port: number) => yaml(port, [job('hourly', [`to: ${store}`, 'schedule: "0 0 * * * *"'])]);

    const fresh = await serve(config);
    await sleep(2500);
    assert.equal(fresh.logs().filter((l) => l.event === 'start').length, 0, 'a backup younger than an hour: nothing runs at start');
    await fresh.stop();

    // Make the only backup two hours old (its manifest's time is what the catalogue reads).
    const manifest = readdirSync(store).find((f) => f.endsWith('.manifest.json'))!;
    const m = JSON.parse(readFileSync(join(store, manifest), 'utf8'));
    m.takenAt = new Date(Date.now() - 2 * 3600_000).toISOString();
    writeFileSync(join(store, manifest), JSON.stringify(m));
    const stale = await serve(config);
    const start = await stale.waitForLog((l) => l.event === 'start', 'the catch-up run');
    assert.equal(start.trigger, 'startup');
    assert.ok(stale.logs().some((l) => l.event === 'catch-up' && l.job === 'hourly' && l.lastSuccess === m.takenAt), 'the log says why it runs');
    await stale.waitForLog((l) => l.event === 'end' && l.status === 'succeeded', 'the catch-up run to end');
    await sleep(1500);
    assert.equal(stale.logs().filter((l) => l.event === 'start').length, 1, 'it runs once');
    await stale.stop();
  });

  test('no overlap: while a run hangs on a frozen etcd, the next ticks are skipped and recorded; it then finishes', async () => {
    const other = await startEtcd();
    try {
      await other.etcdctl(['put', 'a', 'b']);
      const s = await serve((port) => yaml(port, [job('slow', ['to: ./stores/slow', 'schedule: "*/2 * * * * *"'], other.url)]));
      await s.waitForLog((l) => l.event === 'end' && l.status === 'succeeded', 'a first backup');
      other.nodes[0]!.pause();
      let paused = true;
      try {
        const hanging = await s.waitForLog((l) => l.event === 'start' && !runEnds(s).some((e) => e.run === l.run), 'a run that hangs');
        // A tick may also have found the first run still going, on a slow machine; these are the hanging run's.
        const skips = await s.waitForCount((l) => l.event === 'skip' && l.busy === hanging.run, 2, 'two ticks skipped while the run hangs', 15_000);
        assert.ok(skips.every((l) => l.job === 'slow' && typeof l.run === 'string' && l.run !== hanging.run), JSON.stringify(skips));
        other.nodes[0]!.resume();
        paused = false;
        const end = await s.waitForLog((l) => l.event === 'end' && l.run === hanging.run, 'the hanging run to end', 30_000);
        assert.equal(end.status, 'succeeded', JSON.stringify(end));
      } finally {
        if (paused) other.nodes[0]!.resume();
      }
      // Runs never overlapped: each start follows the previous run's end.
      const events = s.logs().filter((l) => l.event === 'start' || l.event === 'end');
      for (let i = 1; i < events.length; i++) assert.notEqual(events[i]!.event, events[i - 1]!.event, `two ${events[i]!.event}s in a row: ${JSON.stringify(events.slice(i - 1, i + 1))}`);
      await s.stop();
    } finally {
      await other.stop();
    }
  });

  test('a failed run is recorded with its error and hint, the service stays up, and the next tick (not sooner) succeeds', async () => {
    const other = await startEtcd();
    try {
      await other.etcdctl(['put', 'a', 'b']);
      const s = await serve((port) => yaml(port, [job('flaky', ['to: ./stores/flaky', 'schedule: "*/3 * * * * *"'], other.url)].map((j) => j.map((l) => l.replace('timeout: "10"', 'timeout: "1"')))));
      await other.nodes[0]!.stop();
      const failed = await s.waitForLog((l) => l.event === 'end' && l.status === 'failed', 'a failed run', 40_000);
      assert.equal(failed.error?.kind, 'connection', JSON.stringify(failed));
      assert.match(failed.error!.message, new RegExp(other.url.replace(/[.]/g, '\\.')));
      assert.match(failed.error!.hint, /etcd is running and reachable/);
      assert.equal(failed.level, 50, 'a failure is logged as an error');
      await other.nodes[0]!.start();
      const ok = await s.waitForLog((l) => l.event === 'end' && l.status === 'succeeded' && l.time > failed.time, 'a run after etcd is back', 40_000);
      const start = s.logs().find((l) => l.event === 'start' && l.run === ok.run)!;
      assert.equal(start.trigger, 'schedule');
      assert.equal(new Date(start.time).getUTCSeconds() % 3, 0, 'the retry waits for a tick');
      assert.equal(s.proc.exitCode, null, 'the service is still up');
      await s.stop();
    } finally {
      await other.stop();
    }
  });
});

describe('bad input keeps the service up', () => {
  test('a store that is down: the run fails with a store error naming it, the other job goes on, the service stays up', async () => {
    const down = await startS3rver({ bucket: 'gone' });
    const s = await serve(
      (port) => yaml(port, [job('s3job', ['to: s3://gone/etcd', 'schedule: "*/2 * * * * *"']), job('dirjob', ['to: ./stores/beside', 'schedule: "*/2 * * * * *"'])]),
      { AWS_ENDPOINT_URL_S3: down.endpoint },
    );
    await s.waitForLog((l) => l.event === 'end' && l.job === 's3job' && l.status === 'succeeded', 'a backup while the store is up');
    await down.stop();
    const failed = await s.waitForLog((l) => l.event === 'end' && l.job === 's3job' && l.status === 'failed', 'a run against the stopped store', 40_000);
    assert.equal(failed.error?.kind, 'store', JSON.stringify(failed));
    assert.match(failed.error!.message, /s3:\/\/gone\/etcd|127\.0\.0\.1/);
    const after = await s.waitForLog((l) => l.event === 'end' && l.job === 'dirjob' && l.status === 'succeeded' && l.time > failed.time, 'the other job after the failure');
    assert.ok(after);
    assert.equal(s.proc.exitCode, null, 'the service is still up');
    assert.ok(!s.stderr().includes('S3RVER'), 'no credential in the log');
    await s.stop();
  });

  test('a malformed config: serve exits 1 before starting, naming the file, line and field', async () => {
    const r = await runCli(['serve', '--config', join(dir, 'missing-jobs.yaml')]);
    assert.equal(r.code, 1, r.stderr);
    writeFileSync(join(dir, 'bad.yaml'), 'listen: 127.0.0.1:1\njobs:\n  - name: x\n    etcd: { url: "http://127.0.0.1:1" }\n    to: ./x\n    schedule: "every day"\n');
    const bad = await runCli(['serve', '--config', join(dir, 'bad.yaml')]);
    assert.equal(bad.code, 1, bad.stderr);
    assert.match(bad.stderr, /bad\.yaml:6: job "x": schedule: "every day" is not a cron expression/);
    assert.doesNotMatch(bad.stderr, /\n\s+at /, 'no stack trace');
  });
});

describe('logs', () => {
  test('at a terminal, readable lines (not JSON); in a pipe, one JSON object per line', async () => {
    writeFileSync(join(dir, 'tty.yaml'), yaml(await freePort(), [job('tty', ['to: ./stores/tty', 'schedule: "0 0 1 1 *"'])]));
    // script(1) gives the service a terminal; timeout ends it with SIGINT, which it handles like SIGTERM.
    const out = await new Promise<string>((resolve) =>
      execFile('timeout', ['-s', 'INT', '8', 'script', '-qec', `${process.execPath} ${binPath} serve --config ${join(dir, 'tty.yaml')}`, '/dev/null'], { env: childEnv() }, (_e, stdout) => resolve(stdout)),
    );
    const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
    assert.match(plain, /^\[\d\d:\d\d:\d\d\] INFO: etcd-shield serve: 1 job\(s\) from .*tty\.yaml/m, plain);
    assert.match(plain, /INFO: backup of job "tty" succeeded in [\d.]+ s .*"keys":\d+/, plain);
    assert.doesNotMatch(plain, /^\{"level"/m, 'no JSON at a terminal');
  });
});

describe('verify schedule', () => {
  test('checks the stored backups end to end with the identity; a damaged archive fails the verify run, named', async () => {
    execFileSync('age-keygen', ['-o', join(dir, 'other-key.txt')], { stdio: 'ignore' });
    const s = await serve((port) =>
      yaml(port, [
        job('checked', ['to: ./stores/checked', 'schedule: "0 0 1 1 *"', `encrypt_to: [${recipient}]`, 'identity_file: key.txt', 'verify: "*/2 * * * * *"']),
        // An identity that is not the recipient's: the backups are fine, the key is wrong.
        job('wrongkey', ['to: ./stores/wrongkey', 'schedule: "0 0 1 1 *"', `encrypt_to: [${recipient}]`, 'identity_file: other-key.txt', 'verify: "*/2 * * * * *"']),
        // etcd's own snapshots, stored and checked the same way.
        [`  - name: snapshots`, `    etcd: { url: "${etcd.url}", timeout: "10", mode: snapshot }`, ...['to: ./stores/snapshots', 'schedule: "0 0 1 1 *"', `encrypt_to: [${recipient}]`, 'identity_file: key.txt', 'verify: "*/2 * * * * *"'].map((l) => `    ${l}`)],
      ]),
    );
    const backup = await s.waitForLog((l) => l.event === 'end' && l.job === 'checked' && l.kind === 'backup' && l.status === 'succeeded', 'the start-up backup');
    const wrongKeyBackup = await s.waitForLog((l) => l.event === 'end' && l.job === 'wrongkey' && l.kind === 'backup' && l.status === 'succeeded', 'the other job\'s start-up backup');
    const locked = await s.waitForLog((l) => l.event === 'end' && l.job === 'wrongkey' && l.kind === 'verify' && l.time > wrongKeyBackup.time, 'a verify run with the wrong identity');
    assert.equal(locked.status, 'failed', JSON.stringify(locked));
    assert.equal(locked.damaged, 0, 'a wrong key is not damage');
    assert.equal(locked.undecrypted, 1, JSON.stringify(locked));
    assert.equal(locked.error?.kind, 'encryption', JSON.stringify(locked));
    assert.match(locked.error!.message, /1 of 1 backups could not be decrypted with the job's identity_file, so they were not checked; first: .*so it is intact/);
    assert.match(locked.error!.hint, /identity_file/);

    const good = await s.waitForLog((l) => l.event === 'end' && l.job === 'checked' && l.kind === 'verify' && l.time > backup.time, 'a verify run after the backup');
    assert.equal(good.status, 'succeeded', JSON.stringify(good));
    assert.equal(good.checked, 1);
    assert.equal(good.damaged, 0);

    const snapshot = await s.waitForLog((l) => l.event === 'end' && l.job === 'snapshots' && l.kind === 'backup' && l.status === 'succeeded', 'the snapshot job\'s start-up backup');
    const snapshotChecked = await s.waitForLog((l) => l.event === 'end' && l.job === 'snapshots' && l.kind === 'verify' && l.time > snapshot.time, 'a verify run of the snapshot');
    assert.equal(snapshotChecked.status, 'succeeded', JSON.stringify(snapshotChecked));
    assert.equal(snapshotChecked.checked, 1);
    const [stored] = (await listBackups(join(dir, 'stores/snapshots'))).backups;
    assert.equal(stored?.manifest.format, 'etcd-snapshot');
    assert.equal(stored?.manifest.keys, snapshot.keys);
    assert.match(stored!.archive.key, /\.db\.zst\.age$/);

    const store = join(dir, 'stores/checked');
    const archive = readdirSync(store).find((f) => f.includes('.archive'))!;
    const bytes = readFileSync(join(store, archive));
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    writeFileSync(join(store, archive), bytes);
    const flipped = new Date().toISOString();
    assert.ok(runEnds(s, 'checked', 'verify').every((l) => l.status === 'succeeded'), 'every verify before the damage passed');
    const bad = await s.waitForLog((l) => l.event === 'end' && l.job === 'checked' && l.kind === 'verify' && l.time > flipped && l.status === 'failed', 'a verify run that sees the damage', 15_000);
    assert.equal(bad.status, 'failed', JSON.stringify(bad));
    assert.equal(bad.damaged, 1);
    assert.equal(bad.error?.kind, 'archive');
    assert.match(bad.error!.message, new RegExp(`1 of 1 backups failed the check; first: ${backup.backup as string}`));
    assert.ok(!s.stderr().includes('AGE-SECRET-KEY'), 'the identity never reaches the log');
    await s.stop();
  });
});

describe('shutdown', () => {
  async function hangingRun(grace: string): Promise<{ s: ServeProcess; other: EtcdCluster; run: string }> {
    const other = await startEtcd();
    await other.etcdctl(['put', 'a', 'b']);
    const s = await serve((port) => yaml(port, [job('stopme', ['to: ./stores/stopme', 'schedule: "*/2 * * * * *"'], other.url)], [`shutdown_grace: ${grace}`]));
    await s.waitForLog((l) => l.event === 'end' && l.status === 'succeeded', 'a first backup');
    other.nodes[0]!.pause();
    const hanging = await s.waitForLog((l) => l.event === 'start' && !runEnds(s).some((e) => e.run === l.run), 'a run that hangs');
    return { s, other, run: hanging.run! };
  }

  const backupsIn = async (name: string) => (await listBackups(join(dir, 'stores', name))).backups.length;
  const leftovers = (name: string) => readdirSync(join(dir, 'stores', name)).filter((f) => !f.endsWith('.manifest.json') && !/\.archive(\.\w+)*$/.test(f) && f !== '.etcd-shield');

  test('SIGTERM lets a running backup finish within the grace period, then exits 0', async () => {
    const { s, other, run } = await hangingRun('30');
    try {
      const before = await backupsIn('stopme');
      s.signal('SIGTERM');
      await s.waitForLog((l) => l.event === 'shutdown' && Array.isArray(l.running), 'the shutdown to wait for the run');
      other.nodes[0]!.resume();
      const end = await s.waitForLog((l) => l.event === 'end' && l.run === run, 'the run to finish');
      assert.equal(end.status, 'succeeded');
      assert.equal((await s.exited).code, 0, s.stderr());
      assert.equal(await backupsIn('stopme'), before + 1);
      assert.equal(s.logs().filter((l) => l.event === 'start').length, 2, 'no new run after the signal');
    } finally {
      other.nodes[0]!.resume();
      await other.stop();
    }
  });

  test('past the grace period, the run is aborted: recorded as aborted, no backup and no partial file left', async () => {
    const { s, other, run } = await hangingRun('2');
    try {
      const before = await backupsIn('stopme');
      s.signal('SIGTERM');
      await s.waitForLog((l) => /grace period of 2 s is over/.test(l.msg), 'the grace period to run out', 10_000);
      const end = await s.waitForLog((l) => l.event === 'end' && l.run === run, 'the aborted run to end', 20_000);
      assert.equal(end.status, 'aborted', JSON.stringify(end));
      assert.equal((await s.exited).code, 0, s.stderr());
      assert.equal(await backupsIn('stopme'), before, 'no backup from the aborted run');
      assert.deepEqual(leftovers('stopme'), [], 'no part file');
    } finally {
      other.nodes[0]!.resume();
      await other.stop();
    }
  });

  test('a second signal aborts the running backup at once', async () => {
    const { s, other, run } = await hangingRun('60');
    try {
      s.signal('SIGTERM');
      await s.waitForLog((l) => l.event === 'shutdown', 'the shutdown to begin');
      s.signal('SIGINT');
      const end = await s.waitForLog((l) => l.event === 'end' && l.run === run, 'the run to be aborted', 20_000);
      assert.equal(end.status, 'aborted');
      assert.ok(s.logs().some((l) => /again: aborting running backups now/.test(l.msg)));
      assert.equal((await s.exited).code, 0, s.stderr());
      assert.deepEqual(leftovers('stopme'), []);
    } finally {
      other.nodes[0]!.resume();
      await other.stop();
    }
  });
});
