// install-plugin and the one-file build, as SHIELD's agent meets them: it lists
// the regular executable files of its plugin directory and runs them from there.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Etcd3 } from 'etcd3';
import { FIELDS } from '../src/config/fields';
import { binPath, describeRun, expectCode, repoRoot, runCli, type CliResult } from './cli';
import { putMany } from './etcd-data';
import { startEtcd, type EtcdCluster } from './harness';

const BUNDLE = path.join(repoRoot, 'dist', 'etcd-shield.js');

/** The agent's inventory: `find DIR -maxdepth 1 -type f -perm /111`, names only. */
function agentScan(dir: string): string[] {
  const out = execFileSync('find', [dir, '-maxdepth', '1', '-type', 'f', '-perm', '/111'], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter(Boolean)
    .map((p) => path.basename(p))
    .sort();
}

/** Runs a plugin file as a command (its #! line applies), from a directory of the caller's choice. */
function runFile(file: string, args: string[], opts: { cwd?: string; input?: Buffer } = {}): CliResult {
  const r = spawnSync(file, args, { cwd: opts.cwd ?? path.dirname(file), input: opts.input, maxBuffer: 256 * 1024 * 1024, timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr.toString('utf8') };
}

/** No node_modules in dir or any directory above it: node could load nothing from there. */
function assertNoNodeModulesAbove(dir: string): void {
  for (let d = dir; ; d = path.dirname(d)) {
    assert.ok(!fs.existsSync(path.join(d, 'node_modules')), `${d} has a node_modules; the self-containment check needs a directory without one above it`);
    if (path.dirname(d) === d) return;
  }
}

let tmp: string;
let plugins: string;

before(async () => {
  assert.ok(fs.existsSync(BUNDLE), `${BUNDLE} is missing: npm run build writes it`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-shield-install-'));
  assertNoNodeModulesAbove(tmp);
  plugins = path.join(tmp, 'plugins');
  fs.mkdirSync(plugins);
  const r = await runCli(['install-plugin', plugins]);
  expectCode(r, 0, 'install-plugin');
  assert.match(r.stdout.toString(), new RegExp(`installed ${path.join(plugins, 'etcd')}.*\\n.*${path.join(plugins, 'etcd')} info`));
});

after(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('the agent lists the installed plugin', () => {
  test('a scan of the plugin directory finds etcd, a regular executable copy of the one-file build', () => {
    assert.deepEqual(agentScan(plugins), ['etcd']);
    const st = fs.lstatSync(path.join(plugins, 'etcd'));
    assert.ok(st.isFile());
    assert.equal(st.mode & 0o777, 0o755);
    assert.ok(fs.readFileSync(path.join(plugins, 'etcd')).equals(fs.readFileSync(BUNDLE)));
    assert.match(fs.readFileSync(BUNDLE, 'utf8').split('\n', 1)[0]!, /^#!\/usr\/bin\/env -S .*node --max-semi-space-size=4$/);
  });

  test('a symbolic link to bin/etcd-shield is not listed (the bug install-plugin fixes)', () => {
    const dir = path.join(tmp, 'linked');
    fs.mkdirSync(dir);
    fs.symlinkSync(binPath, path.join(dir, 'etcd'));
    assert.equal(runFile(path.join(dir, 'etcd'), ['--version']).code, 0, 'the link itself works when run by hand');
    assert.deepEqual(agentScan(dir), []);
  });

  test('info from the installed file parses and has every field, as the checkout prints it', async () => {
    const r = runFile(path.join(plugins, 'etcd'), ['info'], { cwd: tmp });
    expectCode(r, 0, 'installed etcd info');
    const info = JSON.parse(r.stdout.toString('utf8')) as { name: string; version: string; features: unknown; fields: Record<string, unknown>[] };
    assert.equal(info.name, 'etcd-shield');
    assert.deepEqual(info.features, { target: 'yes', store: 'no' });
    assert.deepEqual(
      info.fields.map((f) => f.name),
      FIELDS.map((f) => f.name),
    );
    for (const f of info.fields) for (const k of ['mode', 'name', 'type', 'title', 'help']) assert.ok(f[k], `field ${String(f.name)} lacks ${k}`);
    const fromCheckout = await runCli(['info']);
    assert.deepEqual(info, JSON.parse(fromCheckout.stdout.toString('utf8')));
    // The slow path (commander) prints the same.
    const slow = runFile(path.join(plugins, 'etcd'), ['info', '--debug']);
    expectCode(slow, 0, 'installed etcd info --debug');
    assert.deepEqual(JSON.parse(slow.stdout.toString('utf8')), info);
  });
});

describe('install-plugin replaces only what it should', () => {
  test('a different file is left alone without --force, and replaced with it', async () => {
    const dir = path.join(tmp, 'taken');
    fs.mkdirSync(dir);
    const target = path.join(dir, 'etcd');
    fs.writeFileSync(target, '#!/bin/sh\necho another plugin\n', { mode: 0o755 });

    const refused = await runCli(['install-plugin', dir]);
    expectCode(refused, 1, 'install-plugin over a different file');
    assert.match(refused.stderr, new RegExp(`${target} already exists and is a different file`));
    assert.match(refused.stderr, /what to do: add --force/);
    assert.equal(fs.readFileSync(target, 'utf8'), '#!/bin/sh\necho another plugin\n');

    const forced = await runCli(['install-plugin', dir, '--force']);
    expectCode(forced, 0, 'install-plugin --force');
    assert.match(forced.stdout.toString(), /^replaced /);
    assert.ok(fs.readFileSync(target).equals(fs.readFileSync(BUNDLE)));
    assert.deepEqual(fs.readdirSync(dir), ['etcd'], 'no temporary file is left behind');
  });

  test('a symbolic link is refused without --force and replaced by a regular file with it', async () => {
    const dir = path.join(tmp, 'was-linked');
    fs.mkdirSync(dir);
    fs.symlinkSync(binPath, path.join(dir, 'etcd'));
    const refused = await runCli(['install-plugin', dir]);
    expectCode(refused, 1, 'install-plugin over a link');
    assert.match(refused.stderr, /is a symbolic link/);
    expectCode(await runCli(['install-plugin', dir, '--force']), 0, 'install-plugin --force over a link');
    assert.ok(fs.lstatSync(path.join(dir, 'etcd')).isFile());
    assert.deepEqual(agentScan(dir), ['etcd']);
    assert.ok(fs.lstatSync(binPath).isFile(), 'the link was replaced, not what it pointed to');
  });

  test('the same program again is up to date; the installed file installs itself elsewhere, under another name', async () => {
    const again = await runCli(['install-plugin', plugins]);
    expectCode(again, 0, 'install-plugin again');
    assert.match(again.stdout.toString(), /is up to date/);

    const dir = path.join(tmp, 'second');
    fs.mkdirSync(dir);
    const r = runFile(path.join(plugins, 'etcd'), ['install-plugin', dir, '--name', 'etcd3']);
    expectCode(r, 0, 'installed etcd install-plugin');
    assert.match(r.stdout.toString(), new RegExp(`a copy of ${path.join(plugins, 'etcd')}`));
    assert.deepEqual(agentScan(dir), ['etcd3']);
  });

  test('a missing directory and a bad name are refused with a hint', async () => {
    const missing = await runCli(['install-plugin', path.join(tmp, 'nope')]);
    expectCode(missing, 4, 'install-plugin into a missing directory');
    assert.match(missing.stderr, /does not exist\n {2}what to do: /);
    const bad = await runCli(['install-plugin', plugins, '--name', '../etcd']);
    expectCode(bad, 1, 'install-plugin --name ../etcd');
    assert.match(bad.stderr, /is not a file name/);
  });
});

describe('backup and restore through the installed file', () => {
  let source: EtcdCluster;
  let target: EtcdCluster;

  before(async () => {
    [source, target] = await Promise.all([startEtcd(), startEtcd()]);
  });
  after(async () => {
    await Promise.all([source?.stop(), target?.stop()]);
  });

  async function keys(cluster: EtcdCluster): Promise<string[]> {
    const client = new Etcd3({ hosts: cluster.url });
    try {
      const r = await client.kv.range({ key: Buffer.from([0]), range_end: Buffer.from([0]) });
      return r.kvs.map((kv) => `${kv.key.toString('hex')}=${kv.value.toString('hex')}`);
    } finally {
      client.close();
    }
  }

  test('SHIELD-style backup to stdout, restore from stdin, in a directory without node_modules', async () => {
    const client = new Etcd3({ hosts: source.url });
    try {
      await putMany(
        client,
        Array.from({ length: 500 }, (_, i) => ({ key: Buffer.from(`/registry/pods/p-${i}`), value: Buffer.from([i & 0xff, 0, 0xfe, ...Buffer.from(`v${i}`)]) })),
      );
    } finally {
      client.close();
    }
    const plugin = path.join(plugins, 'etcd');
    const backup = runFile(plugin, ['backup', '-e', JSON.stringify({ url: source.url })]);
    expectCode(backup, 0, 'installed etcd backup');
    assert.ok(backup.stdout.subarray(0, 24).toString() === '#etcd-shield-archive v1\n', `not an archive:\n${describeRun(backup)}`);

    const restore = runFile(plugin, ['restore', '-e', JSON.stringify({ url: target.url })], { input: backup.stdout });
    expectCode(restore, 0, 'installed etcd restore');
    const want = await keys(source);
    assert.equal(want.length, 500);
    assert.deepEqual(await keys(target), want);
  });

  test('SHIELD-style snapshot mode and restore of it through the one-file copy, whose trailer check runs on a worker thread', async () => {
    const plugin = path.join(plugins, 'etcd');
    const backup = runFile(plugin, ['backup', '-e', JSON.stringify({ url: source.url, mode: 'snapshot' })]);
    expectCode(backup, 0, 'installed etcd backup in snapshot mode');
    const snap = backup.stdout;
    assert.equal(snap.length % 512, 32, 'a bbolt database and its 32-byte sha256 trailer');

    // A flipped byte inside the database: only the trailer's sha256, computed on the worker, can tell.
    const flipped = Buffer.from(snap);
    flipped[snap.length - 32 - 100]! ^= 0x01;
    const refused = runFile(plugin, ['restore', '-e', JSON.stringify({ url: target.url })], { input: flipped });
    expectCode(refused, 4, 'restore of a damaged snapshot');
    assert.match(refused.stderr, /sha256 trailer of .* does not match its contents/);

    const client = new Etcd3({ hosts: target.url });
    try {
      await client.delete().all();
    } finally {
      client.close();
    }
    const restore = runFile(plugin, ['restore', '-e', JSON.stringify({ url: target.url })], { input: snap });
    expectCode(restore, 0, 'installed etcd restore of the snapshot');
    assert.deepEqual(await keys(target), await keys(source));
  });

  test('the one-file copy stores into a directory with gzip, and says that zstd, age and S3 need the npm-installed etcd-shield', () => {
    const plugin = path.join(plugins, 'etcd');
    const store = path.join(tmp, 'plugin-store');
    const gz = runFile(plugin, ['backup', '--endpoints', source.url, '--to', store, '--compress', 'gzip']);
    expectCode(gz, 0, 'installed etcd backup --to DIR --compress gzip');
    assert.equal(fs.readdirSync(store).filter((f) => f.endsWith('.archive.gz')).length, 1);
    const missing: [string[], RegExp][] = [
      [['--to', store], /zstd support is missing[\s\S]*--compress gzip/],
      [['--to', store, '--compress', 'gzip', '--encrypt-to', 'age1g952zdcgamzz30qfvcshkqu27kd2kuvfrcplk5ju9reesx6gqa9st0kczk'], /age support is missing/],
      [['--to', 's3://bucket/etcd', '--compress', 'gzip'], /S3 support is missing/],
    ];
    for (const [args, message] of missing) {
      const r = runFile(plugin, ['backup', '--endpoints', source.url, ...args]);
      expectCode(r, 4, `installed etcd backup ${args.join(' ')}`);
      assert.match(r.stderr, message);
    }
  });
});
