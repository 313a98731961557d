// Backups in stores through the real CLI: real etcd, a real S3-compatible
// server (s3rver) through the real AWS SDK, and the real age, zstd and gzip tools.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Etcd3 } from 'etcd3';
import { binPath, childEnv, describeRun, expectCode, runCli, startCli, type CliResult } from './cli';
import { metricTotal } from './fault-points';
import { startEtcd, type EtcdCluster } from './harness';
import { startS3rver, type S3rver } from './s3rver';

const BUCKET = 'backups';
const S3_ENV = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };

let source: EtcdCluster;
let target: EtcdCluster;
let s3: S3rver;
/** Servers killed by a test; their data lives on in the next one, and is removed with them at the end. */
const retired: S3rver[] = [];
let src: Etcd3;
let dst: Etcd3;
let tmp: string;
let key: { file: string; recipient: string };
let otherKey: { file: string; recipient: string };

function ageKey(name: string): { file: string; recipient: string } {
  const file = path.join(tmp, name);
  execFileSync('age-keygen', ['-o', file], { stdio: 'ignore' });
  return { file, recipient: execFileSync('age-keygen', ['-y', file], { encoding: 'utf8' }).trim() };
}

const s3Args = () => ['--s3-endpoint', s3.endpoint, '--s3-path-style'];

function cli(args: string[], env: Record<string, string> = {}, input?: Buffer): Promise<CliResult> {
  return runCli(args, { env: { ...S3_ENV, ...env }, input, timeoutMs: 120_000 });
}

async function ok(args: string[], env: Record<string, string> = {}, input?: Buffer): Promise<CliResult> {
  const r = await cli(args, env, input);
  expectCode(r, 0, args.slice(0, 3).join(' '));
  return r;
}

type Content = { key: string; value: string; lease: string }[];

async function content(c: Etcd3): Promise<Content> {
  const r = await c.kv.range({ key: Buffer.from([0]), range_end: Buffer.from([0]) });
  return r.kvs.map((kv) => ({ key: kv.key.toString('hex'), value: kv.value.toString('hex'), lease: kv.lease }));
}

async function wipe(c: Etcd3): Promise<void> {
  await c.kv.deleteRange({ key: Buffer.from([0]), range_end: Buffer.from([0]) });
  for (const l of (await c.leaseClient.leaseLeases()).leases) await c.leaseClient.leaseRevoke({ ID: l.ID });
}

interface ListJson {
  store: string;
  backups: (Record<string, unknown> & { name: string; archive: string; storedSha256: string; revision: string; keys: number; leases: number })[];
  incomplete: { key: string }[];
}

async function list(url: string): Promise<ListJson> {
  const r = await ok(['list', '--from', url, '--json', ...s3Args()]);
  return JSON.parse(r.stdout.toString()) as ListJson;
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-shield-stores-'));
  [source, target, s3] = await Promise.all([startEtcd(), startEtcd(), startS3rver({ bucket: BUCKET })]);
  src = new Etcd3({ hosts: source.url });
  dst = new Etcd3({ hosts: target.url });
  key = ageKey('key.txt');
  otherKey = ageKey('other.txt');
  // Binary keys and values, text, a key with a lease, and enough to compress.
  const lease = (await src.leaseClient.leaseGrant({ TTL: 600, ID: '0' })).ID;
  await src.kv.put({ key: Buffer.from([0, 1, 0xff]), value: Buffer.from([0, 0xfe, 0x80]) });
  await src.kv.put({ key: Buffer.from('/app/leased'), value: Buffer.from('alive'), lease });
  for (let i = 0; i < 300; i++) await src.kv.put({ key: Buffer.from(`/registry/pods/ns/pod-${i}`), value: Buffer.from(JSON.stringify({ kind: 'Pod', i, spec: 'x'.repeat(200) })) });
});

after(async () => {
  src?.close();
  dst?.close();
  await Promise.all([source?.stop(), target?.stop(), s3?.stop()]);
  for (const old of retired) await old.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('etcd snapshots in a store (backup --mode snapshot --to)', () => {
  const url = `s3://${BUCKET}/etcd/snapshots`;
  const hex = (text: string) => Buffer.from(text).toString('hex');
  beforeEach(() => wipe(dst));

  test('S3 with zstd and age: listed as a snapshot, verified, read by age, zstd and etcdctl, restored whole and by prefix exactly', async () => {
    // A key deleted before the snapshot is in its history, and must not come back.
    await src.kv.put({ key: Buffer.from('/app/gone'), value: Buffer.from('deleted before the snapshot') });
    await src.kv.deleteRange({ key: Buffer.from('/app/gone') });
    const b = await ok(['backup', '--endpoints', source.url, '--mode', 'snapshot', '--to', url, '--encrypt-to', key.recipient, ...s3Args()]);
    assert.match(b.stderr, /backup done: etcd snapshot of member [0-9a-f]+ \(leader\) at \S+ at revision \d+, holding 302 keys and 1 leases; .* \(zstd, encrypted to 1 age recipient\)/, describeRun(b));

    const { backups } = await list(url);
    assert.equal(backups.length, 1);
    const m = backups[0];
    assert.equal(m.format, 'etcd-snapshot');
    assert.equal(m.prefix, '');
    assert.equal(m.keys, 302);
    assert.equal(m.leases, 1);
    assert.match(m.archive, /^\S+-r\d+-[0-9a-f]{4}\.db\.zst\.age$/);
    assert.match((await ok(['list', '--from', url, ...s3Args()])).stdout.toString(), new RegExp(`^${m.name} +snapshot `, 'm'));
    const v = await ok(['verify', '--from', url, '--all', '--identity', key.file, ...s3Args()]);
    assert.match(v.stdout.toString(), new RegExp(`revision ${m.revision}, 302 keys, 1 leases`));

    // Decoded by the real tools, the object is what etcdctl snapshot save writes, and etcdctl reads it.
    const object = path.join(s3.dir, BUCKET, 'etcd', 'snapshots', `${m.archive}._S3rver_object`);
    const db = path.join(tmp, 'stored-snapshot.db');
    execFileSync('sh', ['-c', `age -d -i '${key.file}' '${object}' | zstd -d -c > '${db}'`]);
    assert.equal(fs.statSync(db).size, m.archiveBytes);
    const status = JSON.parse(execFileSync('etcdctl', ['snapshot', 'status', db, '-w', 'json'], { encoding: 'utf8', env: childEnv({ ETCDCTL_API: '3' }) })) as { revision: number };
    assert.equal(String(status.revision), m.revision);

    const sourceContent = await content(src);
    await ok(['restore', '--endpoints', target.url, '--from', url, '--identity', key.file, '--prefix', '/app/', ...s3Args()]);
    assert.deepEqual(await content(dst), sourceContent.filter((kv) => kv.key.startsWith(hex('/app/'))));
    await wipe(dst);
    await ok(['restore', '--endpoints', target.url, '--from', url, '--identity', key.file, ...s3Args()]);
    assert.deepEqual(await content(dst), sourceContent);
    assert.deepEqual((await dst.leaseClient.leaseLeases()).leases.map((l) => l.ID), (await src.leaseClient.leaseLeases()).leases.map((l) => l.ID));

    // A restore to a point needs an archive and its change log; a snapshot is restored as it was taken.
    const point = await cli(['restore', '--endpoints', target.url, '--from', url, '--identity', key.file, '--to-revision', m.revision, ...s3Args()]);
    expectCode(point, 4, 'restore --to-revision from a store of snapshots');
    assert.match(point.stderr, /its backups are all etcd snapshots[\s\S]*what to do: restore a snapshot as it was taken/);
  });

  test('a missing bucket fails before the snapshot is streamed; a temporary copy that cannot be written stores nothing and is removed', async () => {
    const sent = () => metricTotal(source.url, 'grpc_server_msg_sent_total', ['grpc_method="Snapshot"']);
    const before = await sent();
    const nobucket = await cli(['backup', '--endpoints', source.url, '--mode', 'snapshot', '--to', 's3://no-such-bucket/x', ...s3Args()]);
    expectCode(nobucket, 4, 'a snapshot to a missing bucket');
    assert.match(nobucket.stderr, /bucket no-such-bucket does not exist/);
    assert.equal(await sent(), before, 'the snapshot was streamed before the store was found missing');

    // 64 KiB (bash counts KiB) is less than any etcd database: the temporary copy fails (node ignores SIGXFSZ).
    const scratch = fs.mkdtempSync(path.join(tmp, 'tmpdir-'));
    const store = path.join(tmp, 'snapshot-store');
    const args = [process.execPath, binPath, 'backup', '--endpoints', source.url, '--mode', 'snapshot', '--to', store];
    const r = spawnSync('bash', ['-c', 'ulimit -f 64 && exec "$@"', 'bash', ...args], { env: childEnv({ TMPDIR: scratch }), encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 4, r.stderr);
    assert.match(r.stderr, new RegExp(`cannot write ${scratch}/etcd-shield-\\d+-\\w+/snapshot\\.db: EFBIG.*the snapshot's temporary copy, on its way to file://${store}`));
    assert.match(r.stderr, /what to do: .*set TMPDIR to a directory with room/);
    assert.ok((await sent()) > before, 'the snapshot was never streamed');
    assert.deepEqual(fs.readdirSync(scratch), [], 'the temporary copy was left behind');
    assert.deepEqual(fs.readdirSync(store), [], 'the store holds something');

    // A stored snapshot is checked from a local copy, so verify under the same limit stops the run instead of calling the backup damaged.
    await ok(['backup', '--endpoints', source.url, '--mode', 'snapshot', '--to', store, '--compress', 'none']);
    const [snap] = (await list(store)).backups;
    const v = spawnSync('bash', ['-c', 'ulimit -f 64 && exec "$@"', 'bash', process.execPath, binPath, 'verify', '--from', store, '--all'], { env: childEnv({ TMPDIR: scratch }), encoding: 'utf8', timeout: 60_000 });
    assert.equal(v.status, 4, v.stderr);
    assert.match(v.stderr, new RegExp(`cannot write the downloaded copy of backup ${snap!.name} in file://${store} to ${scratch}/etcd-shield-\\d+-\\w+: EFBIG`), v.stderr);
    assert.match(v.stderr, /what to do: free space in the temporary directory, or set TMPDIR/);
    assert.doesNotMatch(v.stdout + v.stderr, /FAILED|intact/, 'verify judged the backup from a copy it could not write');
    assert.deepEqual(fs.readdirSync(scratch), [], 'the temporary copy was left behind');
    await ok(['verify', '--from', store, '--all']);
  });
});

describe('S3 with zstd and age', () => {
  const url = `s3://${BUCKET}/etcd/main`;
  beforeEach(() => wipe(dst));

  test('a round trip is exact key by key, leases included, and the manifest holds no key', async () => {
    const b = await ok(['backup', '--endpoints', source.url, '--to', url, '--encrypt-to', key.recipient, ...s3Args()]);
    assert.match(b.stderr, /stored as \S+-r\d+-[0-9a-f]{4} in s3:\/\/backups\/etcd\/main/);
    assert.match(b.stderr, /zstd, encrypted to 1 age recipient/);
    const listed = await list(url);
    assert.equal(listed.backups.length, 1);
    const m = listed.backups[0];
    assert.equal(m.keys, 302);
    assert.equal(m.leases, 1);
    assert.equal(m.compression, 'zstd');
    assert.deepEqual(m.encryption, { type: 'age', recipients: [key.recipient] });
    const manifestText = JSON.stringify(m);
    for (const k of ['registry', 'leased', 'pod-']) assert.ok(!manifestText.includes(k), `manifest mentions ${k}`);

    const r = await ok(['restore', '--endpoints', target.url, '--from', url, '--identity', key.file, ...s3Args()]);
    assert.match(r.stderr, new RegExp(`backup ${m.name} from s3://backups/etcd/main`));
    assert.deepEqual(await content(dst), await content(src));
    const leases = (await dst.leaseClient.leaseLeases()).leases.map((l) => l.ID);
    assert.deepEqual(leases, (await src.leaseClient.leaseLeases()).leases.map((l) => l.ID));
  });

  test('what we store, age and zstd read; what age and zstd write, we restore', async () => {
    const { backups } = await list(url);
    const m = backups[backups.length - 1];
    const object = path.join(s3.dir, BUCKET, 'etcd', 'main', `${m.archive}._S3rver_object`);
    const stored = fs.readFileSync(object);
    assert.equal(createHash('sha256').update(stored).digest('hex'), m.storedSha256);
    const plain = execFileSync('sh', ['-c', `age -d -i '${key.file}' '${object}' | zstd -d -c`]);
    const v = await ok(['verify', '--json'], {}, plain);
    assert.equal((JSON.parse(v.stdout.toString()) as { revision: string }).revision, m.revision);

    // The other way: a plain archive from stdout, through the real tools.
    const archive = (await ok(['backup', '--endpoints', source.url])).stdout;
    const sealed = path.join(tmp, 'sealed.zst.age');
    execFileSync('sh', ['-c', `zstd -q -c | age -r ${key.recipient} > '${sealed}'`], { input: archive });
    await ok(['verify', '--in', sealed, '--identity', key.file]);
    await ok(['restore', '--endpoints', target.url, '--in', sealed, '--identity', key.file]);
    assert.deepEqual(await content(dst), await content(src));
    const gz = path.join(tmp, 'archive.gz');
    execFileSync('sh', ['-c', `gzip -c > '${gz}'`], { input: archive });
    const vg = await ok(['verify', '--in', gz, '--json']);
    assert.equal((JSON.parse(vg.stdout.toString()) as { keys: number }).keys, 302);
  });

  test('a wrong or missing identity is refused before anything is written, and no secret is printed', async () => {
    await dst.kv.put({ key: Buffer.from('/untouched'), value: Buffer.from('1') });
    const before = await content(dst);
    const wrong = await cli(['restore', '--endpoints', target.url, '--from', url, '--identity', otherKey.file, '--debug', ...s3Args()]);
    expectCode(wrong, 4, 'restore with the wrong identity');
    assert.match(wrong.stderr, /identit/i);
    assert.ok(!/AGE-SECRET-KEY/i.test(wrong.stderr + wrong.stdout.toString()), 'an identity was printed');
    const none = await cli(['restore', '--endpoints', target.url, '--from', url, ...s3Args()]);
    expectCode(none, 4, 'restore without an identity');
    assert.match(none.stderr, /encrypted with age[\s\S]*--identity FILE/);
    const missing = await cli(['restore', '--endpoints', target.url, '--from', url, '--identity', path.join(tmp, 'nope.txt'), ...s3Args()]);
    expectCode(missing, 4, 'restore with a missing identity file');
    assert.match(missing.stderr, /nope\.txt/);
    assert.deepEqual(await content(dst), before);

    // verify without the key, or with another: not checked, and not called damaged.
    for (const given of [[], ['--identity', otherKey.file]]) {
      const v = await cli(['verify', '--from', url, '--all', ...given, ...s3Args()]);
      const what = `verify --all ${given.length ? 'with the wrong identity' : 'without an identity'}`;
      expectCode(v, 4, what);
      assert.match(v.stdout.toString(), /^LOCKED +\S+-r\d+-[0-9a-f]{4} /m, `${what}\n${describeRun(v)}`);
      assert.match(v.stderr, /could not be decrypted with the identities given, so they were not checked[\s\S]*--identity FILE/, `${what}\n${describeRun(v)}`);
      assert.doesNotMatch(v.stderr, /do not rely|FAILED/, `${what}\n${describeRun(v)}`);
      // With a key given, the manifest's sha256 shows the object intact: the key is what is wrong.
      if (given.length) assert.match(v.stdout.toString(), /encrypted to other recipients \(its stored bytes match its manifest's sha256, so it is intact\)/, describeRun(v));
    }
    const json = await cli(['verify', '--from', url, '--all', '--json', ...s3Args()]);
    expectCode(json, 4, 'verify --all --json without an identity');
    const report = JSON.parse(json.stdout.toString()) as { backups: { ok: boolean; undecrypted?: boolean }[] };
    assert.ok(report.backups.length > 0 && report.backups.every((b) => !b.ok && b.undecrypted === true), describeRun(json));
  });

  test('two backups into one bucket path at once both land, under different names', async () => {
    const url3 = `s3://${BUCKET}/etcd/twice`;
    const runs = await Promise.all([0, 1].map(() => cli(['backup', '--endpoints', source.url, '--to', url3, '--encrypt-to', key.recipient, ...s3Args()])));
    runs.forEach((r, i) => expectCode(r, 0, `backup ${i + 1} of 2`));
    const { backups, incomplete } = await list(url3);
    assert.equal(new Set(backups.map((b) => b.name)).size, 2);
    assert.deepEqual(incomplete, []);
    await ok(['verify', '--from', url3, '--all', '--identity', key.file, ...s3Args()]);
  });

  test('wrong credentials and a missing bucket: exit 4 and what to do', async () => {
    const denied = await cli(['list', '--from', url, ...s3Args()], { AWS_ACCESS_KEY_ID: 'NOT-A-KEY', AWS_SECRET_ACCESS_KEY: 'sekrit-value-42' });
    expectCode(denied, 4, 'list with a wrong access key id');
    assert.match(denied.stderr, /credential|access/i);
    assert.ok(!denied.stderr.includes('sekrit-value-42'));
    const backup = await cli(['backup', '--endpoints', source.url, '--to', url, ...s3Args()], { AWS_ACCESS_KEY_ID: 'NOT-A-KEY' });
    expectCode(backup, 4, 'backup with a wrong access key id');
    const nobucket = await cli(['backup', '--endpoints', source.url, '--to', 's3://no-such-bucket/x', ...s3Args()]);
    expectCode(nobucket, 4, 'backup to a missing bucket');
    assert.match(nobucket.stderr, /no-such-bucket/);
    assert.doesNotMatch(nobucket.stderr, /\n\s+at /, 'a stack trace without --debug');
  });

  describe('a large upload (about 30 MB that does not compress: several multipart parts)', () => {
    const url2 = `s3://${BUCKET}/etcd/big`;
    const bigBackup = () => ['backup', '--endpoints', source.url, '--prefix', '/big/', '--to', url2, '--compress', 'none', ...s3Args()];
    before(async () => {
      // A server of its own, whose log holds only what these tests send.
      retired.push(s3);
      s3 = await startS3rver({ bucket: BUCKET });
      const { randomBytes } = await import('node:crypto');
      for (let i = 0; i < 30; i++) await src.kv.put({ key: Buffer.from(`/big/${String(i).padStart(3, '0')}`), value: randomBytes(1024 * 1024) });
    });
    after(() => src.kv.deleteRange({ key: Buffer.from('/big/'), range_end: Buffer.from('/big0') }));

    /** Starts the big backup and waits until the server holds its first part: the upload is then in the middle. */
    async function caughtMidUpload() {
      const run = startCli(bigBackup(), { env: S3_ENV });
      const deadline = Date.now() + 60_000;
      while (!partStored(s3.dir) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.ok(partStored(s3.dir), `no upload part reached the server; backup said: ${run.stderr()}`);
      return run;
    }

    test('Ctrl-C mid-upload: the multipart upload is aborted and nothing is listed', async () => {
      const run = await caughtMidUpload();
      run.child.kill('SIGINT');
      const r = await run.exit;
      // Exit 4, not 0: the signal came while parts were still to send (about 22 of 30 MB).
      assert.equal(r.code, 4, `a stopped backup must fail: ${describeRun(r)}`);
      assert.match(r.stderr, /stopped by a signal; nothing was stored as a backup in s3:\/\/backups\/etcd\/big/);
      // s3rver logs a request once it has answered it, a moment after our client saw the answer.
      // On a loaded machine (a full CI run) s3rver can take seconds to finish the aborted parts' requests first.
      for (let i = 0; i < 150 && !/x-id=AbortMultipartUpload/.test(s3.log()); i++) await new Promise((res) => setTimeout(res, 100));
      assert.match(s3.log(), /x-id=AbortMultipartUpload/, `the multipart upload was never aborted; the backup said:\n${r.stderr}\nthe end of s3rver's log:\n${s3.log().slice(-3000)}`);
      assert.deepEqual((await list(url2)).backups, []);
      clearUploads(s3.dir);
    });

    test('the server killed mid-upload: the backup fails, nothing is listed, and the next run works', async () => {
      const run = await caughtMidUpload();
      await s3.kill();
      const r = await run.exit;
      assert.equal(r.code, 4, `the backup must fail when the server dies: ${describeRun(r)}`);
      assert.match(r.stderr, /cannot reach the S3 endpoint http:\/\/127\.0\.0\.1/);
      retired.push(s3);
      s3 = await startS3rver({ bucket: BUCKET, dir: s3.dir });
      assert.deepEqual((await list(url2)).backups, [], 'a killed upload must not be listed as a backup');
      await ok(bigBackup());
      assert.equal((await list(url2)).backups.length, 1);
    });
  });
});

/** s3rver cannot abort an upload (405), so it keeps the parts; a test that is done with them clears them. */
function clearUploads(dir: string): void {
  fs.rmSync(path.join(dir, BUCKET, '._S3rver_uploads'), { recursive: true, force: true });
}

/** s3rver keeps the parts of an unfinished multipart upload under ._S3rver_uploads/ID/, as files named by number (beside `key` and `metadata`, written when the upload starts). */
function partStored(dir: string): boolean {
  const walk = (d: string): boolean => fs.readdirSync(d, { withFileTypes: true }).some((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : e.isFile() && /^\d+$/.test(e.name)));
  try {
    return walk(path.join(dir, BUCKET, '._S3rver_uploads'));
  } catch {
    return false;
  }
}

describe('a directory store', () => {
  beforeEach(() => wipe(dst));

  test('gzip objects read with gzip -d; a corrupted object is refused by verify and restore, and etcd is unchanged', async () => {
    const store = path.join(tmp, 'dir-gzip');
    await ok(['backup', '--endpoints', source.url, '--to', store, '--compress', 'gzip']);
    await ok(['backup', '--endpoints', source.url, '--to', `file://${store}`, '--compress', 'gzip']);
    const { backups } = await list(store);
    assert.equal(backups.length, 2);
    const object = path.join(store, backups[1].archive);
    assert.match(backups[1].archive, /\.archive\.gz$/);
    const plain = execFileSync('gzip', ['-d', '-c', object]);
    await ok(['verify', '--json'], {}, plain);
    await ok(['verify', '--from', store, '--all']);

    const bytes = fs.readFileSync(object);
    bytes[Math.floor(bytes.length / 2)] ^= 0x40;
    fs.writeFileSync(object, bytes);
    await dst.kv.put({ key: Buffer.from('/keep'), value: Buffer.from('me') });
    const before = await content(dst);
    const v = await cli(['verify', '--from', store, '--all']);
    expectCode(v, 4, 'verify --all with a corrupted backup');
    assert.match(v.stdout.toString(), new RegExp(`ok\\s+${backups[0].name}`));
    assert.match(v.stdout.toString(), new RegExp(`FAILED\\s+${backups[1].name}`));
    const r = await cli(['restore', '--endpoints', target.url, '--from', store, '--overwrite']);
    expectCode(r, 4, 'restore of a corrupted backup');
    assert.match(r.stderr, new RegExp(backups[1].name));
    assert.deepEqual(await content(dst), before, 'a refused restore changed etcd');
    // The older, intact backup is still there to take.
    await ok(['restore', '--endpoints', target.url, '--from', store, '--backup', backups[0].name, '--overwrite']);
    assert.deepEqual(await content(dst), await content(src));

    // One damaged and one that cannot be decrypted: each is called what it is.
    await ok(['backup', '--endpoints', source.url, '--to', store, '--encrypt-to', key.recipient]);
    const mixed = await cli(['verify', '--from', store, '--all']);
    expectCode(mixed, 4, 'verify --all with a damaged and an undecryptable backup');
    assert.match(mixed.stdout.toString(), /^LOCKED /m, describeRun(mixed));
    assert.match(mixed.stderr, /1 of 3 backups in \S+ failed verification, and 1 could not be decrypted with the identities given \(not checked\)/, describeRun(mixed));
    assert.match(mixed.stderr, /do not rely on the failed backups[\s\S]*--identity FILE/, describeRun(mixed));
  });

  test('a damaged age recipient stanza is called damage, not a wrong key', async () => {
    const store = path.join(tmp, 'dir-stanza');
    await ok(['backup', '--endpoints', source.url, '--to', store, '--encrypt-to', key.recipient]);
    const [m] = (await list(store)).backups;
    const object = path.join(store, m.archive);
    const bytes = fs.readFileSync(object);
    // A byte inside the stanza's body: the right key no longer unwraps the file key, as a wrong key would not.
    const body = bytes.indexOf('\n', bytes.indexOf('-> X25519')) + 3;
    bytes[body] = bytes[body] === 0x41 ? 0x42 : 0x41;
    fs.writeFileSync(object, bytes);
    const v = await cli(['verify', '--from', store, '--identity', key.file]);
    expectCode(v, 4, 'verify of a backup with a damaged stanza');
    assert.match(v.stdout.toString(), /^FAILED .*does not match the sha256 in its manifest: it was altered or damaged in the store/m, describeRun(v));
    assert.doesNotMatch(v.stdout.toString() + v.stderr, /LOCKED|other recipients/, describeRun(v));
    const r = await cli(['restore', '--endpoints', target.url, '--from', store, '--identity', key.file]);
    expectCode(r, 4, 'restore of a backup with a damaged stanza');
    assert.match(r.stderr, /altered or damaged in the store/, describeRun(r));
    assert.deepEqual(await content(dst), []);
  });

  test('list of a store that holds nothing of ours says so, beside the count', async () => {
    const empty = path.join(tmp, 'dir-empty');
    fs.mkdirSync(empty);
    fs.writeFileSync(path.join(empty, 'README.txt'), 'not a backup');
    const r = await ok(['list', '--from', empty]);
    assert.equal(r.stdout.length, 0, describeRun(r));
    assert.match(r.stderr, /^0 complete backups in file:\/\/\S+dir-empty\nnote: nothing etcd-shield wrote is under file:\/\/\S+dir-empty; check the path/m, describeRun(r));
  });

  test('a truncated object is refused', async () => {
    const store = path.join(tmp, 'dir-trunc');
    await ok(['backup', '--endpoints', source.url, '--to', store]);
    const [m] = (await list(store)).backups;
    const object = path.join(store, m.archive);
    fs.truncateSync(object, fs.statSync(object).size - 10);
    const r = await cli(['restore', '--endpoints', target.url, '--from', store]);
    expectCode(r, 4, 'restore of a truncated backup');
    assert.deepEqual(await content(dst), []);
  });

  test('a download that does not fit in the temporary directory blames neither the store nor the backup, and writes nothing', async () => {
    const store = path.join(tmp, 'dir-tmpfull');
    await ok(['backup', '--endpoints', source.url, '--to', store, '--compress', 'none']);
    await dst.kv.put({ key: Buffer.from('/untouched'), value: Buffer.from('1') });
    const before = await content(dst);
    // 16 KiB (bash counts KiB) is less than the archive: the downloaded copy fails (node ignores SIGXFSZ).
    const limited = (args: string[]) => spawnSync('bash', ['-c', 'ulimit -f 16 && exec "$@"', 'bash', process.execPath, binPath, ...args], { env: childEnv(), encoding: 'utf8', timeout: 60_000 });
    const r = limited(['restore', '--endpoints', target.url, '--from', store]);
    assert.equal(r.status, 4, r.stderr);
    assert.match(r.stderr, /cannot write the downloaded copy of backup \S+ in file:\/\/\S+ to \S+: EFBIG/, r.stderr);
    assert.match(r.stderr, /what to do: free space in the temporary directory, or set TMPDIR/, r.stderr);
    assert.doesNotMatch(r.stderr + r.stdout, /FAILED|do not rely|check the store URL/, 'restore blamed the backup or the store');
    assert.deepEqual(await content(dst), before);
    // verify checks an etcd-shield archive as it streams past and keeps no copy, so the same limit does not stop it.
    const v = limited(['verify', '--from', store, '--all']);
    assert.equal(v.status, 0, v.stderr);
    assert.match(v.stdout + v.stderr, /1 backup in \S+ intact/);
  });

  test('delete removes named backups whole, complete or not; an unknown name or the last backup is refused, deleting nothing', async () => {
    const store = path.join(tmp, 'dir-delete');
    for (let i = 0; i < 3; i++) await ok(['backup', '--endpoints', source.url, '--to', store]);
    const [a, b, c] = (await list(store)).backups.map((x) => x.name);
    // A run that died (an archive alone) and a manifest that cannot be read.
    fs.writeFileSync(path.join(store, '2026-12-01T00-00-00Z-r5-abcd.archive.zst'), 'partial');
    fs.writeFileSync(path.join(store, '2026-12-01T00-00-01Z-r6-abcd.manifest.json'), '{');
    const files = () => fs.readdirSync(store).sort();
    const all = files();

    const dry = await ok(['delete', '--from', store, a!, '--dry-run']);
    assert.match(dry.stdout.toString(), new RegExp(`^would delete ${a} +\\(manifest and archive; 2 objects`, 'm'));
    assert.deepEqual(files(), all);
    for (const [args, code, why] of [
      [[a!, '2026-12-09T00-00-00Z-r1-ffff'], 4, /holds no backup named 2026-12-09T00-00-00Z-r1-ffff; nothing was deleted/],
      [[a!, 'latest'], 1, /"latest" is not a backup name/],
      [[a!, b!, c!], 1, /every complete backup .*nothing was deleted[\s\S]*--force/],
    ] as const) {
      const r = await cli(['delete', '--from', store, ...args]);
      expectCode(r, code, `delete ${args.join(' ')}`);
      assert.match(r.stderr, why);
      assert.deepEqual(files(), all, `delete ${args.join(' ')} deleted something`);
    }

    const done = await ok(['delete', '--from', store, a!, '2026-12-01T00-00-00Z-r5-abcd', '2026-12-01T00-00-01Z-r6-abcd', '--json']);
    const report = JSON.parse(done.stdout.toString()) as { backups: { name: string; kind: string; objects: string[] }[]; removedObjects: number; remaining: number };
    assert.deepEqual(report.backups.map((x) => [x.name, x.kind, x.objects.length]), [[a, 'complete', 2], ['2026-12-01T00-00-00Z-r5-abcd', 'incomplete', 1], ['2026-12-01T00-00-01Z-r6-abcd', 'broken', 1]]);
    assert.ok(report.backups[0]!.objects[0]!.endsWith('.manifest.json'), 'the manifest goes first');
    assert.equal(report.removedObjects, 4);
    assert.equal(report.remaining, 2);
    const left = await list(store);
    assert.deepEqual(left.backups.map((x) => x.name), [b, c]);
    assert.deepEqual(left.incomplete, []);
    await ok(['verify', '--from', store, '--all']);
    await ok(['delete', '--from', store, b!, c!, '--force']);
    assert.deepEqual(files(), []);
  });

  test('two backups into one store at once both land, under different names', async () => {
    const store = path.join(tmp, 'dir-two');
    const [a, b] = await Promise.all([
      cli(['backup', '--endpoints', source.url, '--to', store]),
      cli(['backup', '--endpoints', source.url, '--to', store]),
    ]);
    expectCode(a, 0, 'first of two');
    expectCode(b, 0, 'second of two');
    const { backups, incomplete } = await list(store);
    assert.equal(backups.length, 2);
    assert.notEqual(backups[0].name, backups[1].name);
    assert.deepEqual(incomplete, []);
    await ok(['verify', '--from', store, '--all']);
  });

  test('prune keeps by restic rules, says why, never the newest, and clears old incomplete archives', async () => {
    const store = path.join(tmp, 'dir-prune');
    await ok(['backup', '--endpoints', source.url, '--to', store]);
    const [real] = (await list(store)).backups;
    // The same backup, copied under 60 earlier times, every 9 hours.
    const start = Date.parse('2026-10-01T00:00:00Z');
    for (let i = 0; i < 60; i++) {
      const at = new Date(start + i * 9 * 3600_000);
      const name = `${at.toISOString().slice(0, 19).replace(/:/g, '-')}Z-r${real.revision}-${(0x1000 + i).toString(16)}`;
      const archive = real.archive.replace(real.name, name);
      fs.copyFileSync(path.join(store, real.archive), path.join(store, archive));
      fs.writeFileSync(path.join(store, `${name}.manifest.json`), JSON.stringify({ ...real, name, archive, takenAt: at.toISOString() }));
    }
    const stale = path.join(store, '2026-09-01T00-00-00Z-r1-dead.archive.zst');
    fs.writeFileSync(stale, 'partial');
    fs.utimesSync(stale, new Date('2026-09-01Z'), new Date('2026-09-01Z'));
    const fresh = path.join(store, `${new Date().toISOString().slice(0, 19).replace(/:/g, '-')}Z-r1-beef.archive.zst`);
    fs.writeFileSync(fresh, 'still writing');
    // A backup whose manifest is damaged: reported, and left alone with its archive, however old.
    const damaged = '2026-09-02T00-00-00Z-r1-bad0';
    fs.copyFileSync(path.join(store, real.archive), path.join(store, real.archive.replace(real.name, damaged)));
    fs.utimesSync(path.join(store, real.archive.replace(real.name, damaged)), new Date('2026-09-02Z'), new Date('2026-09-02Z'));
    fs.writeFileSync(path.join(store, `${damaged}.manifest.json`), '{"kind": "etcd-shield-backup", "vers');
    const warned = await ok(['list', '--from', store]);
    assert.match(warned.stderr, new RegExp(`warning: manifest ${damaged}\\.manifest\\.json is not valid JSON`));
    expectCode(await cli(['verify', '--from', store, '--all']), 4, 'verify --all with a damaged manifest');
    assert.equal((await list(store)).backups.length, 61);

    const dry = await ok(['prune', '--from', store, '--keep-last', '2', '--keep-daily', '3', '--keep-weekly', '2', '--dry-run', '--json']);
    const plan = JSON.parse(dry.stdout.toString()) as { backups: { name: string; keep: boolean; reasons: string[] }[]; incompleteRemoved: string[] };
    assert.equal((await list(store)).backups.length, 61, 'a dry run deleted something');
    const kept = plan.backups.filter((b) => b.keep);
    assert.equal(plan.backups[0].name, real.name);
    assert.deepEqual(plan.backups[0].reasons.slice(0, 1), ['last 1/2']);
    assert.ok(kept.length >= 3 && kept.length <= 7, `kept ${kept.length}`);
    assert.deepEqual(plan.incompleteRemoved, [path.basename(stale)]);

    const human = await ok(['prune', '--from', store, '--keep-last', '2', '--keep-daily', '3', '--keep-weekly', '2']);
    assert.match(human.stdout.toString(), /^keep\s+\S+\s+\(last 1\/2/m);
    assert.match(human.stdout.toString(), /^delete\s+\S+\s+\(no rule keeps it\)/m);
    const after = await list(store);
    assert.deepEqual(after.backups.map((b) => b.name).sort(), kept.map((b) => b.name).sort());
    assert.ok(!fs.existsSync(stale), 'an incomplete archive a month old was kept');
    assert.ok(fs.existsSync(fresh), 'a backup still being written was removed');
    assert.ok(fs.existsSync(path.join(store, `${damaged}.manifest.json`)) && fs.existsSync(path.join(store, real.archive.replace(real.name, damaged))), 'prune touched a backup whose manifest it cannot read');
    assert.equal(fs.readdirSync(store).filter((f) => f.endsWith('.json')).length, kept.length + 1);
    await ok(['restore', '--endpoints', target.url, '--from', store]);
    assert.deepEqual(await content(dst), await content(src));
  });

  test('a backup killed outright leaves a part file: list says so, prune removes it once a day old, never a fresh one or a file not ours', async () => {
    const store = path.join(tmp, 'dir-killed');
    // Enough random bytes (24 MB) that the backup is still writing when it is stopped.
    const big = await startEtcd();
    const bigClient = new Etcd3({ hosts: big.url });
    let part: string | undefined;
    try {
      const value = () => randomBytes(12 * 1024);
      for (let i = 0; i < 2000; i += 100) await Promise.all(Array.from({ length: 100 }, (_, j) => bigClient.kv.put({ key: Buffer.from(`/big/${i + j}`), value: value() })));
      const run = startCli(['backup', '--endpoints', big.url, '--to', store]);
      const parts = () => (fs.existsSync(store) ? fs.readdirSync(store).filter((f) => f.endsWith('.part')) : []);
      const writing = () => parts().some((f) => fs.statSync(path.join(store, f), { throwIfNoEntry: false })?.size);
      const exited = run.exit.then(() => true);
      while (!writing() && !(await Promise.race([exited, new Promise<false>((r) => setTimeout(() => r(false), 2))]))) {
        // polling for the part file
      }
      run.child.kill('SIGKILL');
      const r = await run.exit;
      // The fault hit: killed mid-write, with its part file there and nothing committed.
      assert.equal(run.child.signalCode, 'SIGKILL', `the backup ended before it was killed\n${describeRun(r)}`);
      [part] = parts();
      assert.ok(part, 'no part file was left');
      assert.deepEqual(fs.readdirSync(store).filter((f) => !f.startsWith('.')), []);
    } finally {
      bigClient.close();
      await big.stop();
    }
    // Someone else's hidden file that looks like a part file, a week old: not ours to remove.
    const foreign = path.join(store, '.notes.txt.42.part');
    fs.writeFileSync(foreign, 'mine');
    fs.utimesSync(foreign, new Date(Date.now() - 7 * 86400_000), new Date(Date.now() - 7 * 86400_000));

    const listed = await ok(['list', '--from', store]);
    assert.match(listed.stderr, new RegExp(`note: 1 unfinished write\\(s\\) left by runs that were killed \\(${part!.replace(/\./g, '\\.')}, [\\d.]+ (B|KiB|MiB)\\)`));
    assert.doesNotMatch(listed.stderr, /nothing etcd-shield wrote/);
    const json = JSON.parse((await ok(['list', '--from', store, '--json'])).stdout.toString()) as { unfinished: { id: string; key: string; bytes: number }[] };
    assert.deepEqual(json.unfinished.map((w) => w.id), [part]);
    assert.match(json.unfinished[0]!.key, /\.archive\.zst$/);

    // Fresh: a run might still be writing it.
    const fresh = JSON.parse((await ok(['prune', '--from', store, '--keep-last', '1', '--dry-run', '--json'])).stdout.toString()) as { unfinishedRemoved: string[] };
    assert.deepEqual(fresh.unfinishedRemoved, []);
    const old = new Date(Date.now() - 2 * 86400_000);
    fs.utimesSync(path.join(store, part!), old, old);
    const dry = JSON.parse((await ok(['prune', '--from', store, '--keep-last', '1', '--dry-run', '--json'])).stdout.toString()) as { unfinishedRemoved: string[] };
    assert.deepEqual(dry.unfinishedRemoved, [part]);
    assert.ok(fs.existsSync(path.join(store, part!)), 'a dry run removed the part file');
    const pruned = await ok(['prune', '--from', store, '--keep-last', '1']);
    assert.match(pruned.stdout.toString(), new RegExp(`^delete\\s+${part!.replace(/\./g, '\\.')}  \\(unfinished write of \\S+ by a run that was killed`, 'm'));
    assert.match(pruned.stderr, /prune done: kept 0 backups and deleted 0 backups, 1 unfinished write\(s\)/);
    assert.deepEqual(fs.readdirSync(store), [path.basename(foreign)]);

    await ok(['backup', '--endpoints', source.url, '--to', store]);
    assert.equal((await list(store)).backups.length, 1);

    // A killed run's temporary copy (a download, a snapshot) goes when the next run makes one.
    const scratch = fs.mkdtempSync(path.join(tmp, 'scratch-'));
    const leftover = path.join(scratch, `etcd-shield-${spawnSync('true').pid}-Xy12`);
    fs.mkdirSync(leftover);
    fs.writeFileSync(path.join(leftover, 'download'), 'x'.repeat(4096));
    await ok(['restore', '--endpoints', source.url, '--from', store, '--dry-run'], { TMPDIR: scratch });
    assert.deepEqual(fs.readdirSync(scratch), []);
  });

  test('restore --before picks the newest backup at or before a time; bad selectors say what exists', async () => {
    const store = path.join(tmp, 'dir-before');
    await ok(['backup', '--endpoints', source.url, '--to', store]);
    await src.kv.put({ key: Buffer.from('/later'), value: Buffer.from('x') });
    await new Promise((r) => setTimeout(r, 1100));
    const cut = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 1100));
    await ok(['backup', '--endpoints', source.url, '--to', store]);
    await src.kv.deleteRange({ key: Buffer.from('/later') });
    await ok(['restore', '--endpoints', target.url, '--from', store, '--before', cut]);
    assert.ok(!(await content(dst)).some((e) => e.key === Buffer.from('/later').toString('hex')));
    const none = await cli(['restore', '--endpoints', target.url, '--from', store, '--before', '2000-01-01']);
    expectCode(none, 4, 'restore --before a time with no backup');
    assert.match(none.stderr, /no backup taken at or before 2000-01-01T00:00:00.000Z; the oldest is/);
    fs.mkdirSync(path.join(tmp, 'empty-store'));
    const empty = await cli(['restore', '--endpoints', target.url, '--from', path.join(tmp, 'empty-store')]);
    expectCode(empty, 4, 'restore from a store with nothing');
    assert.match(empty.stderr, /empty-store holds no complete backup/);
    const missing = await cli(['list', '--from', path.join(tmp, 'no-store')]);
    expectCode(missing, 4, 'list of a directory that does not exist');
    assert.match(missing.stderr, /no-store does not exist/);
    assert.doesNotMatch(empty.stderr, /\n\s+at /);
  });
});
