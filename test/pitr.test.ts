// Point-in-time recovery through the real CLI: real etcd, the real S3-compatible
// server (s3rver) and a directory store. A writer changes keys (some with
// leases) while `follow` records them; restores to recorded revisions and
// times into a fresh etcd must match the source read at that revision, key by key.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Etcd3 } from 'etcd3';
import { restoreToPoint } from '../src/api/restore-to-point';
import { resolveConfig } from '../src/config/config';
import { ordersRequestedProgress } from '../src/etcd/progress-order';
import { describeRun, expectCode, killStartedClis, runCli, startCli, type CliResult, type RunningCli } from './cli';
import { makeTestDir, removeTestDir, startEtcd, type EtcdCluster } from './harness';
import { startS3rver, type S3rver } from './s3rver';

const S3_ENV = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };
const PREFIX = '/app/';

let source: EtcdCluster;
let target: EtcdCluster;
let s3: S3rver;
let src: Etcd3;
let dst: Etcd3;
let tmp: string;

const s3Args = () => ['--s3-endpoint', s3.endpoint, '--s3-path-style'];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function ok(args: string[]): Promise<CliResult> {
  const r = await runCli(args, { env: S3_ENV, timeoutMs: 120_000 });
  expectCode(r, 0, args.slice(0, 3).join(' '));
  return r;
}

function follow(url: string, extra: string[] = []): RunningCli {
  return startCli(['follow', '--endpoints', source.endpoints.join(','), '--prefix', PREFIX, '--to', url, '--flush', '300ms', '--idle-flush', '1s', ...s3Args(), ...extra], { env: S3_ENV });
}

type Content = [string, string, string][];

async function contentAt(c: Etcd3, revision?: string): Promise<Content> {
  const r = await c.kv.range({ key: Buffer.from(PREFIX), range_end: Buffer.from('/app0'), ...(revision ? { revision } : {}) });
  return r.kvs.map((kv) => [kv.key.toString(), kv.value.toString(), kv.lease]);
}

async function wipeTarget(): Promise<void> {
  await dst.kv.deleteRange({ key: Buffer.from([0]), range_end: Buffer.from([0]) });
  for (const l of (await dst.leaseClient.leaseLeases()).leases) await dst.leaseClient.leaseRevoke({ ID: l.ID });
}

/** Puts, updates and deletes, some keys under a lease, some writes outside the prefix; returns the revision after. */
async function write(round: number, lease: string): Promise<string> {
  let rev = '0';
  for (let i = 0; i < 30; i++) {
    const k = `${PREFIX}k${(round * 7 + i) % 23}`;
    const op = (round + i) % 5;
    if (op === 3) rev = (await src.kv.deleteRange({ key: Buffer.from(k) })).header.revision;
    else if (op === 4) rev = (await src.kv.put({ key: Buffer.from(k), value: Buffer.from(`leased ${round}.${i}`), lease })).header.revision;
    else rev = (await src.kv.put({ key: Buffer.from(k), value: Buffer.from(`v ${round}.${i}`) })).header.revision;
    if (i % 10 === 0) rev = (await src.kv.put({ key: Buffer.from(`/other/${i}`), value: Buffer.from('x') })).header.revision;
  }
  return rev;
}

interface Moment {
  revision: string;
  time: string;
}

/** A quiet moment after the writes: the follower has seen every revision up to now. */
async function moment(): Promise<Moment> {
  await sleep(1200);
  const time = new Date().toISOString();
  const revision = (await src.kv.range({ key: Buffer.from('/nothing') })).header.revision;
  await sleep(50);
  return { revision, time };
}

async function restoreAndCompare(url: string, flag: '--to-revision' | '--to-time', m: Moment): Promise<void> {
  await wipeTarget();
  const r = await ok(['restore', '--endpoints', target.url, '--from', url, flag, flag === '--to-revision' ? m.revision : m.time, '--prefix', PREFIX, '--overwrite', ...s3Args()]);
  if (flag === '--to-time') assert.match(r.stderr, new RegExp(`time \\S+ is revision ${m.revision}\\b`), describeRun(r));
  assert.deepEqual(await contentAt(dst), await contentAt(src, m.revision), `${flag} ${m.revision}: ${describeRun(r)}`);
}

interface ListJson {
  backups: { name: string; revision: string }[];
  windows: { fromRevision: number; toRevision: number }[];
  changes: { segments: number; gaps: string[] };
}

async function list(url: string): Promise<ListJson> {
  return JSON.parse((await ok(['list', '--from', url, '--json', ...s3Args()])).stdout.toString()) as ListJson;
}

before(async () => {
  tmp = makeTestDir();
  [source, target, s3] = await Promise.all([startEtcd(), startEtcd(), startS3rver({ bucket: 'pitr' })]);
  src = new Etcd3({ hosts: source.url });
  dst = new Etcd3({ hosts: target.url });
});

after(async () => {
  killStartedClis();
  src?.close();
  dst?.close();
  await Promise.all([source?.stop(), target?.stop(), s3?.stop()]);
  if (tmp) await removeTestDir(tmp);
});

describe('point-in-time recovery', () => {
  const url = 's3://pitr/main';
  const moments: Moment[] = [];

  test('follow records every change; restore to each recorded revision and time is exact, leases included', { timeout: 240_000 }, async () => {
    const lease = (await src.leaseClient.leaseGrant({ TTL: 600, ID: '0' })).ID;
    await write(0, lease);
    const f = follow(url);
    await f.waitStderr(/following changes from revision/);
    assert.match(f.stderr(), /full backup \S+ at revision \d+/, 'a store without a backup gets one first');
    for (let round = 1; round <= 4; round++) {
      await write(round, lease);
      moments.push(await moment());
    }
    f.child.kill('SIGTERM');
    const done = await f.exit;
    assert.equal(done.code, 0, describeRun(done));
    assert.match(done.stderr, /follow stopped: the open segment was stored/);

    const l = await list(url);
    assert.equal(l.windows.length, 1, JSON.stringify(l));
    assert.ok(l.windows[0]!.toRevision >= Number(moments[moments.length - 1]!.revision), JSON.stringify(l.windows));
    for (const m of moments) await restoreAndCompare(url, '--to-revision', m);
    for (const m of [moments[0]!, moments[2]!]) await restoreAndCompare(url, '--to-time', m);
  });

  test('a revision past the log is refused naming the windows; etcd is unchanged', { timeout: 60_000 }, async () => {
    await wipeTarget();
    await dst.kv.put({ key: Buffer.from('/app/untouched'), value: Buffer.from('1') });
    const future = String(Number(moments[moments.length - 1]!.revision) + 100_000);
    const r = await runCli(['restore', '--endpoints', target.url, '--from', url, '--to-revision', future, '--overwrite', ...s3Args()], { env: S3_ENV });
    expectCode(r, 4, 'restore past the log');
    assert.match(r.stderr, /past the last recorded change\. Recoverable windows: r\d+ \(.*\) to r\d+/);
    assert.deepEqual(await contentAt(dst), [['/app/untouched', '1', '0']]);
    // A change log continues archives: follow in snapshot mode is refused before it writes anything.
    const snapshots = await runCli(['follow', '--endpoints', source.url, '--mode', 'snapshot', '--to', 's3://pitr/snapshot-follow', ...s3Args()], { env: S3_ENV });
    expectCode(snapshots, 4, 'follow --mode snapshot');
    assert.match(snapshots.stderr, /a change log continues etcd-shield archives[\s\S]*what to do: set mode to logical/);
    assert.equal((await list('s3://pitr/snapshot-follow')).backups.length, 0);
  });

  test('follower SIGKILLed and restarted: no event lost or repeated, the chain stays one window', { timeout: 240_000 }, async () => {
    const lease = (await src.leaseClient.leaseGrant({ TTL: 600, ID: '0' })).ID;
    const f1 = follow(url);
    await f1.waitStderr(/following changes from revision/);
    await write(9, lease);
    await f1.waitStderr(/segment r\d+-r\d+: [1-9]\d* events/);
    // Killed with events received but not yet stored: the restart must read them again from etcd.
    await write(10, lease);
    f1.child.kill('SIGKILL');
    const dead = await f1.exit;
    assert.match(dead.stderr, /died of SIGKILL/);
    await write(11, lease);
    const whileDead = await moment();
    const f2 = follow(url);
    await f2.waitStderr(/following changes from revision/);
    await write(12, lease);
    const afterRestart = await moment();
    f2.child.kill('SIGTERM');
    expectCode(await f2.exit, 0, 'follow after restart');
    const l = await list(url);
    assert.equal(l.windows.length, 1, JSON.stringify(l.windows));
    await restoreAndCompare(url, '--to-revision', whileDead);
    await restoreAndCompare(url, '--to-revision', afterRestart);
  });

  test('compaction past the follower: the gap is marked and listed, a new full backup covers what follows', { timeout: 240_000 }, async () => {
    const lease = (await src.leaseClient.leaseGrant({ TTL: 600, ID: '0' })).ID;
    await write(20, lease);
    const lost = await moment();
    await write(21, lease);
    const compactAt = (await src.kv.range({ key: Buffer.from('/nothing') })).header.revision;
    await source.etcdctl(['compact', compactAt], { check: true });
    const f = follow(url);
    await f.waitStderr(/full backup \S+ at revision \d+/);
    assert.match(f.stderr(), /gap: revisions from \d+ were compacted away/);
    await write(22, lease);
    const after = await moment();
    f.child.kill('SIGTERM');
    expectCode(await f.exit, 0, 'follow across a compaction');
    const l = await list(url);
    assert.equal(l.changes.gaps.length, 1, JSON.stringify(l.changes));
    assert.equal(l.windows.length, 2, JSON.stringify(l.windows));
    const r = await runCli(['restore', '--endpoints', target.url, '--from', url, '--to-revision', lost.revision, ...s3Args()], { env: S3_ENV });
    expectCode(r, 4, 'restore into the gap');
    assert.match(r.stderr, /in a gap of the change log/);
    await restoreAndCompare(url, '--to-revision', after);

    // Keeping only the newest backup drops the segments before it; its window stays whole.
    const p = await ok(['prune', '--from', url, '--keep-last', '1', '--json', ...s3Args()]);
    const pruned = JSON.parse(p.stdout.toString()) as { changesRemoved: string[] };
    assert.ok(pruned.changesRemoved.length > 0 && pruned.changesRemoved.some((k) => k.startsWith('changes-gap-')), p.stdout.toString());
    const kept = await list(url);
    assert.equal(kept.windows.length, 1, JSON.stringify(kept.windows));
    assert.deepEqual(kept.changes.gaps, []);
    await restoreAndCompare(url, '--to-revision', after);
  });

  test('verify checks every segment and the chain; a flipped byte in one is named and refused before any write', { timeout: 120_000 }, async () => {
    const v = await ok(['verify', '--from', url, ...s3Args()]);
    assert.match(v.stderr, /change log: \d+ segments intact/);
    const bucketDir = path.join(s3.dir, 'pitr', 'main');
    const segs = fs.readdirSync(bucketDir).filter((n) => n.startsWith('changes-r') && n.endsWith('._S3rver_object')).sort();
    const victim = path.join(bucketDir, segs[0]!);
    const bytes = fs.readFileSync(victim);
    bytes[bytes.length - 10] ^= 0xff;
    fs.writeFileSync(victim, bytes);
    const bad = await runCli(['verify', '--from', url, ...s3Args()], { env: S3_ENV });
    expectCode(bad, 4, 'verify a damaged segment');
    assert.match(bad.stdout.toString(), new RegExp(`FAILED +${segs[0]!.replace('._S3rver_object', '').replace(/\./g, '\\.')}`), describeRun(bad));
    await wipeTarget();
    const last = (await list(url)).windows[0]!.toRevision;
    const r = await runCli(['restore', '--endpoints', target.url, '--from', url, '--to-revision', String(last), ...s3Args()], { env: S3_ENV });
    expectCode(r, 4, 'restore across a damaged segment');
    assert.match(r.stderr, /change segment changes-r\d+-r\d+-\S+ in s3:\/\/pitr\/main/, describeRun(r));
    assert.deepEqual(await contentAt(dst), []);
  });
});

describe('a directory store that goes away for a while', () => {
  // The store's directory is replaced by a file: puts fail (ENOTDIR) until it is put back.
  test('segments are retried until the store is back; nothing is lost', { timeout: 240_000 }, async () => {
    const dir = path.join(tmp, 'store');
    fs.mkdirSync(dir);
    const lease = (await src.leaseClient.leaseGrant({ TTL: 600, ID: '0' })).ID;
    const f = follow(dir);
    await f.waitStderr(/following changes from revision/);
    // A file where the store's directory was: every write fails until it is back.
    fs.renameSync(dir, `${dir}.away`);
    fs.writeFileSync(dir, 'not a directory');
    await write(30, lease);
    const during = await moment();
    await f.waitStderr(/cannot store change segment/);
    fs.rmSync(dir);
    fs.renameSync(`${dir}.away`, dir);
    await write(31, lease);
    const afterwards = await moment();
    f.child.kill('SIGTERM');
    expectCode(await f.exit, 0, 'follow with a store that went away');
    await restoreAndCompare(dir, '--to-revision', during);
    await restoreAndCompare(dir, '--to-revision', afterwards);
  });
});

describe('restore to a point streams the merge into etcd', () => {
  const store = () => path.join(tmp, 'merge');
  let early: Moment;
  let point: Moment;

  before(async () => {
    fs.mkdirSync(store());
    const lease = (await src.leaseClient.leaseGrant({ TTL: 600, ID: '0' })).ID;
    await write(40, lease);
    await ok(['backup', '--endpoints', source.url, '--prefix', PREFIX, '--to', store(), '--compress', 'none']);
    const f = follow(store());
    await f.waitStderr(/following changes from revision/);
    await write(41, lease);
    early = await moment();
    await src.kv.put({ key: Buffer.from(`${PREFIX}only-in-the-log`), value: Buffer.from('value from the change log') });
    await write(42, lease);
    point = await moment();
    f.child.kill('SIGTERM');
    expectCode(await f.exit, 0, 'follow');
  });

  test('no merged archive is written: the write phase reads the fetched backup and the spooled segments', { timeout: 120_000 }, async () => {
    await wipeTarget();
    const temp = path.join(tmp, 'tmpdir');
    fs.mkdirSync(temp);
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = temp;
    let seen: { names: string[]; spool: Buffer } | undefined;
    try {
      const { config } = resolveConfig({ url: target.url, prefix: PREFIX, overwrite: true });
      const s = await restoreToPoint(config, store(), {
        toRevision: Number(point.revision),
        onProgress: (e) => {
          if (e.phase !== 'writing keys' || seen) return;
          const [work] = fs.readdirSync(temp);
          const dir = path.join(temp, work!);
          seen = { names: fs.readdirSync(dir).sort(), spool: fs.readFileSync(path.join(dir, 'changes')) };
        },
      });
      assert.ok(s.events > 0 && s.changedKeys > 0 && s.written > 0, JSON.stringify(s));
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
    assert.ok(seen, 'the restore reached its write phase');
    assert.deepEqual(seen.names, ['archive', 'changes'], 'the backup as fetched and the spooled change log, nothing merged');
    assert.ok(seen.spool.includes('value from the change log'), 'a changed value is read back from the spooled segments');
    assert.deepEqual(fs.readdirSync(temp), [], 'the private directory is removed');
    assert.deepEqual(await contentAt(dst), await contentAt(src, point.revision));
  });

  test('dry run counts the merged state against etcd and changes nothing', { timeout: 60_000 }, async () => {
    await wipeTarget();
    const truth = await contentAt(src, early.revision);
    const [same, changed] = [truth[0]!, truth[1]!];
    await dst.kv.put({ key: Buffer.from(same[0]), value: Buffer.from(same[1]), ...(same[2] !== '0' ? { lease: (await dst.leaseClient.leaseGrant({ TTL: 600, ID: '0' })).ID } : {}) });
    await dst.kv.put({ key: Buffer.from(changed[0]), value: Buffer.from('something else') });
    await dst.kv.put({ key: Buffer.from(`${PREFIX}not-at-that-revision`), value: Buffer.from('x') });
    const before = await contentAt(dst);
    const r = await ok(['restore', '--endpoints', target.url, '--from', store(), '--to-revision', early.revision, '--prefix', PREFIX, '--overwrite', '--dry-run']);
    const out = r.stdout.toString();
    assert.match(out, new RegExp(`add +${truth.length - 2} keys`), out);
    assert.match(out, /update +1 keys/, out);
    assert.match(out, /keep +1 keys unchanged/, out);
    assert.match(out, /delete +1 keys that the archive does not hold/, out);
    assert.deepEqual(await contentAt(dst), before);
  });

  test('a backup damaged inside (manifest made to match) is refused by the verify pass before the first write', { timeout: 60_000 }, async () => {
    await wipeTarget();
    await dst.kv.put({ key: Buffer.from(`${PREFIX}untouched`), value: Buffer.from('1') });
    const manifestName = fs.readdirSync(store()).find((n) => n.endsWith('.manifest.json'))!;
    const manifestPath = path.join(store(), manifestName);
    const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8')) as { archive: string; storedSha256: string; storedBytes: number };
    const archivePath = path.join(store(), manifest.archive);
    const original = fs.readFileSync(archivePath);
    const bad = Buffer.from(original);
    bad[bad.indexOf('leased 40.')] ^= 0x01;
    try {
      fs.writeFileSync(archivePath, bad);
      fs.writeFileSync(manifestPath, JSON.stringify({ ...manifest, storedSha256: createHash('sha256').update(bad).digest('hex') }));
      const r = await runCli(['restore', '--endpoints', target.url, '--from', store(), '--to-revision', point.revision, '--prefix', PREFIX, '--overwrite'], { env: S3_ENV });
      expectCode(r, 4, 'restore from a damaged backup');
      assert.match(r.stderr, /checksum does not match/, describeRun(r));
      assert.deepEqual(await contentAt(dst), [[`${PREFIX}untouched`, '1', '0']]);
    } finally {
      fs.writeFileSync(archivePath, original);
      fs.writeFileSync(manifestPath, JSON.stringify(manifest));
    }
  });
});

describe('a 3-member cluster that loses the member the follower watches', () => {
  test('the watch moves to another member from the next revision; restores stay exact', { timeout: 240_000 }, async () => {
    const cluster = await startEtcd({ members: 3 });
    const client = new Etcd3({ hosts: cluster.endpoints });
    const dir = path.join(tmp, 'members');
    fs.mkdirSync(dir);
    try {
      const truthAt = async (revision: string): Promise<Content> =>
        (await client.kv.range({ key: Buffer.from(PREFIX), range_end: Buffer.from('/app0'), revision })).kvs.map((kv) => [kv.key.toString(), kv.value.toString(), kv.lease]);
      const writeTo = async (n: number) => {
        let rev = '0';
        for (let i = 0; i < 20; i++) rev = (await client.kv.put({ key: Buffer.from(`${PREFIX}m${(n * 3 + i) % 11}`), value: Buffer.from(`${n}.${i}`) })).header.revision;
        return rev;
      };
      await writeTo(0);
      const f = startCli(['follow', '--endpoints', cluster.endpoints.join(','), '--prefix', PREFIX, '--to', dir, '--flush', '300ms', '--idle-flush', '1s']);
      await f.waitStderr(/following changes from revision/);
      // The watch is on one member, chosen by the client: kill each in turn until the follower notices.
      let hit = false;
      for (const node of cluster.nodes) {
        await node.kill();
        await writeTo(1);
        await sleep(2500);
        hit = /the watch on .* failed/.test(f.stderr());
        if (hit) break;
        await node.start();
      }
      assert.ok(hit, `the follower never lost its watch:\n${f.stderr()}`);
      const rev = await writeTo(2);
      await sleep(1500);
      f.child.kill('SIGTERM');
      expectCode(await f.exit, 0, 'follow across a member failure');
      await wipeTarget();
      const r = await ok(['restore', '--endpoints', target.url, '--from', dir, '--to-revision', rev, '--prefix', PREFIX, '--overwrite']);
      assert.deepEqual(await contentAt(dst), await truthAt(rev), describeRun(r));
    } finally {
      client.close();
      await cluster.stop();
    }
  });
});

describe('a follower that starts behind a backlog of several of etcd\'s catch-up batches', () => {
  // etcd sends a watch that catches up at most 1,000 revisions every 100 ms. Before 3.4.25 (and 3.5.8)
  // it answered a progress request at once with its newest revision, ahead of the rest of the backlog:
  // taken as "covered", that made the follower drop the rest as repeats, and list and verify saw no gap.
  test('every event of the backlog is recorded once; progress is asked for only where etcd answers it in order', { timeout: 120_000 }, async () => {
    const dir = path.join(tmp, 'backlog');
    fs.mkdirSync(dir);
    await ok(['backup', '--endpoints', source.url, '--prefix', PREFIX, '--to', dir]);
    const from = Number((await src.kv.range({ key: Buffer.from('/nothing') })).header.revision);
    const writes = 8000;
    for (let i = 0; i < writes; i += 200) {
      await Promise.all(Array.from({ length: 200 }, (_, j) => src.kv.put({ key: Buffer.from(`${PREFIX}b${(i + j) % 300}`), value: Buffer.from(`backlog ${i + j}`) })));
    }
    const last = (await src.kv.range({ key: Buffer.from('/nothing') })).header.revision;
    assert.equal(Number(last), from + writes);
    const f = follow(dir);
    const reached = () => [...f.stderr().matchAll(/segment r\d+-r(\d+): /g)].some((m) => Number(m[1]) >= Number(last));
    while (!reached() && f.child.exitCode === null) await sleep(100);
    f.child.kill('SIGTERM');
    const done = await f.exit;
    expectCode(done, 0, 'follow behind a backlog');
    const segments = [...done.stderr.matchAll(/segment r(\d+)-r(\d+): (\d+) events/g)].map((m) => ({ last: Number(m[2]), events: Number(m[3]) }));
    assert.equal(segments.reduce((n, s) => n + s.events, 0), writes, `events recorded for ${writes} writes: ${describeRun(done)}`);
    // The fault's condition: the catch-up outlasted flush intervals (the interval progress is asked at).
    assert.ok(segments.filter((s) => s.events > 0 && s.last < Number(last)).length >= 2, `the backlog came over several flushes:\n${done.stderr}`);
    const { version } = await src.maintenance.status();
    assert.equal(/answers a progress request ahead of events/.test(done.stderr), !ordersRequestedProgress(version), `etcd ${version}: ${done.stderr}`);
    await restoreAndCompare(dir, '--to-revision', { revision: last, time: '' });
  });
});
