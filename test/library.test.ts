// The package as a library, in-process, against real etcd: the README's
// example (examples/library.ts, compiled against the package's own exports),
// and the promises the API makes: no output of its own, typed errors,
// progress callbacks, and an AbortSignal that stops a run.
import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import * as lib from 'etcd-shield';
import { copyApp } from '../examples/library';
import { repoRoot } from './cli';
import { startEtcd, type EtcdCluster } from './harness';

let source: EtcdCluster;
let target: EtcdCluster;
let dir: string;

before(async () => {
  [source, target] = await Promise.all([startEtcd(), startEtcd()]);
  dir = mkdtempSync(join(tmpdir(), 'etcd-shield-lib-'));
});
after(async () => {
  await Promise.all([source?.stop(), target?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

/**
 * Runs a script against the package in a child node, so that anything the
 * library writes to stdout or stderr is seen (node's test runner owns this
 * process's stdout). The script's own result comes back on fd 3.
 */
function runScript(script: string): Promise<{ stdout: string; stderr: string; result: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', script], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let result = '';
    child.stdout!.on('data', (b: Buffer) => (stdout += b));
    child.stderr!.on('data', (b: Buffer) => (stderr += b));
    (child.stdio[3] as NodeJS.ReadableStream).on('data', (b: Buffer) => (result += b));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code !== 0) reject(new Error(`script exited ${code}: ${stderr}`));
      else resolve({ stdout, stderr, result: JSON.parse(result) as Record<string, unknown> });
    });
  });
}

const REPORT = `(r) => require('node:fs').writeSync(3, JSON.stringify(r))`;

async function dump(url: string, prefix: string): Promise<string[]> {
  const c = new Etcd3({ hosts: url });
  try {
    const r = await c.kv.range({ key: Buffer.from(prefix), range_end: Buffer.from(prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1)) });
    return r.kvs.map((kv) => `${kv.key.toString('hex')}=${kv.value.toString('hex')} leased=${kv.lease !== '0'}`);
  } finally {
    c.close();
  }
}

test('the README shows examples/library.ts word for word', () => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
  const example = readFileSync(join(repoRoot, 'examples', 'library.ts'), 'utf8').trim();
  assert.ok(readme.includes(example), 'README.md does not show examples/library.ts as it is');
});

test('the README example copies a prefix between two real clusters, leases included', async () => {
  const c = new Etcd3({ hosts: source.url });
  try {
    for (let i = 0; i < 300; i++) await c.put(`/app/item-${i}`).value(`value ${i}`);
    await c.put('/other/not-copied').value('x');
    const lease = c.lease(600, { autoKeepAlive: false });
    await lease.put('/app/session').value('live');
    await lease.release();
  } finally {
    c.close();
  }
  const t = new Etcd3({ hosts: target.url });
  await t.put('/app/stale').value('removed by overwrite');
  t.close();

  const result = await copyApp(source.url, target.url, join(dir, 'app.archive'));
  assert.equal(result.keys, 301);
  assert.equal(result.written, 301);
  assert.equal(result.deleted, 1);
  assert.match(result.revision, /^\d+$/);
  assert.deepEqual(await dump(target.url, '/app/'), await dump(source.url, '/app/'));
  assert.deepEqual(await dump(target.url, '/other/'), []);
});

test('operations print nothing themselves; progress and warnings come through callbacks', async () => {
  const { stdout, stderr, result } = await runScript(`
    const lib = require('etcd-shield');
    const { PassThrough } = require('node:stream');
    (async () => {
      const { config } = lib.resolveConfig({ url: ${JSON.stringify(source.url)}, prefix: '/app/' });
      const events = [];
      const out = new PassThrough();
      const chunks = [];
      out.on('data', (b) => chunks.push(b));
      const summary = await lib.backup(config, out, { onProgress: (e) => events.push(e) });
      const verified = await lib.verify(new PassThrough().end(Buffer.concat(chunks)));
      const report = await lib.validate({ url: ${JSON.stringify(source.url)}, prefix: '/app/', timeout: 'soon' });
      let failure;
      try {
        const bad = lib.resolveConfig({ url: 'http://127.0.0.1:9', timeout: '0.5' }).config;
        await lib.backup(bad, { file: ${JSON.stringify(join(dir, 'never.archive'))} });
      } catch (err) {
        failure = { connection: err instanceof lib.ConnectionError, exitCode: err.exitCode, httpStatus: err.httpStatus, message: err.message, hint: err.hint };
      }
      let archiveError = false;
      await lib.verify(new PassThrough().end('not an archive')).catch((err) => (archiveError = err instanceof lib.ArchiveError));
      (${REPORT})({ keys: summary.keys, events, verified, report, failure, archiveError });
    })();
  `);
  assert.equal(stdout, '', 'the library wrote to stdout');
  assert.equal(stderr, '', 'the library wrote to stderr');
  const events = result.events as lib.ProgressEvent[];
  assert.equal(result.keys, 301);
  assert.ok(events.some((e) => e.phase === 'backup' && e.done === 301), `no final progress event: ${JSON.stringify(events)}`);
  assert.equal((result.verified as lib.VerifySummary).keys, 301);
  assert.equal((result.verified as lib.VerifySummary).prefix, '/app/');
  const report = result.report as lib.ValidationReport;
  assert.equal(report.ok, false);
  assert.deepEqual(report.failures, ['timeout']);

  const failure = result.failure as { connection: boolean; exitCode: number; httpStatus: number; message: string; hint: string };
  assert.ok(failure?.connection, `not a ConnectionError: ${JSON.stringify(failure)}`);
  assert.equal(failure.exitCode, lib.ExitCode.failure);
  assert.equal(failure.httpStatus, lib.ERROR_KINDS.connection.httpStatus);
  assert.match(failure.message, /127\.0\.0\.1:9/);
  assert.ok(failure.hint.length > 0);
  assert.throws(() => readFileSync(join(dir, 'never.archive')), /ENOENT/, 'a failed backup left a file');
  assert.equal(result.archiveError, true, 'verify of garbage did not throw an ArchiveError');
});

test('an aborted signal stops a restore before it writes, with a CancelledError', async () => {
  const { config } = lib.resolveConfig({ url: target.url, prefix: '/app/', overwrite: true });
  const controller = new AbortController();
  controller.abort(new Error('operator asked'));
  const before = await dump(target.url, '/app/');
  await assert.rejects(lib.restore(config, { file: join(dir, 'app.archive') }, { signal: controller.signal }), lib.CancelledError);
  assert.deepEqual(await dump(target.url, '/app/'), before);
});

test('stores through the library: back up encrypted into a directory, list, verify, prune and restore, printing nothing', async () => {
  const store = join(dir, 'store');
  const keyFile = join(dir, 'age-key.txt');
  execFileSync('age-keygen', ['-o', keyFile], { stdio: 'ignore' });
  const recipient = execFileSync('age-keygen', ['-y', keyFile], { encoding: 'utf8' }).trim();
  const { stdout, stderr, result } = await runScript(`
    const lib = require('etcd-shield');
    (async () => {
      const { config } = lib.resolveConfig({ url: ${JSON.stringify(source.url)}, prefix: '/app/' });
      const phases = new Set();
      const warned = [];
      const first = await lib.backupToStore(config, ${JSON.stringify(store)}, { compression: 'gzip', recipients: [${JSON.stringify(recipient)}], onProgress: (e) => phases.add(e.phase), onWarning: (m) => warned.push(m) });
      const { config: nothing } = lib.resolveConfig({ url: ${JSON.stringify(source.url)}, prefix: '/no-such-app/' });
      const empty = await lib.backupToStore(nothing, ${JSON.stringify(join(dir, 'empty-store'))}, { onWarning: (m) => warned.push(m) });
      const second = await lib.backupToStore(config, ${JSON.stringify(store)}, { recipients: [${JSON.stringify(recipient)}] });
      const listed = await lib.listBackups(${JSON.stringify(store)});
      const identities = await lib.readIdentityFile(${JSON.stringify(keyFile)});
      const verified = await lib.verifyStore(${JSON.stringify(store)}, { all: true, identities });
      const noKey = await lib.verifyStore(${JSON.stringify(store)});
      const refused = noKey.ok ? 'nothing' : noKey.checks[0].error.constructor.name;
      const pruned = await lib.pruneStore(${JSON.stringify(store)}, { last: 1 });
      const { config: target } = lib.resolveConfig({ url: ${JSON.stringify(target.url)}, prefix: '/app/', overwrite: true });
      const restored = await lib.restoreFromStore(target, ${JSON.stringify(store)}, { identities });
      (${REPORT})({
        names: [first.name, second.name], compression: [first.manifest.compression, second.manifest.compression],
        listed: listed.backups.map((b) => b.name), verified: verified.ok, checks: verified.checks.length, refused,
        kept: pruned.decisions.filter((d) => d.keep).map((d) => d.backup.name), removed: pruned.removed,
        restoredFrom: restored.backup.name, written: restored.written, phases: [...phases], warned, emptyKeys: empty.manifest.keys,
      });
    })();
  `);
  assert.equal(stdout, '', 'the library wrote to stdout');
  assert.equal(stderr, '', 'the library wrote to stderr');
  const r = result as { names: string[]; compression: string[]; listed: string[]; verified: boolean; checks: number; refused: string; kept: string[]; removed: number; restoredFrom: string; written: number; phases: string[]; warned: string[]; emptyKeys: number };
  assert.deepEqual(r.compression, ['gzip', 'zstd']);
  assert.deepEqual(r.listed, r.names);
  assert.equal(r.verified, true);
  assert.equal(r.checks, 2);
  assert.equal(r.refused, 'EncryptionError', 'verifying an encrypted backup without an identity must fail');
  assert.deepEqual(r.kept, [r.names[1]]);
  assert.equal(r.removed, 2, 'prune removes a manifest and its archive');
  assert.equal(r.restoredFrom, r.names[1]);
  assert.equal(r.written, 301);
  assert.deepEqual(r.phases, ['backup', 'upload']);
  // Only the backup of a prefix with no keys warns, and through the callback, not on stderr.
  assert.equal(r.emptyKeys, 0);
  assert.equal(r.warned.length, 1, r.warned.join('\n'));
  assert.match(r.warned[0]!, /^no keys under the prefix "\/no-such-app\/" at revision \d+: the backup is empty/);
  assert.deepEqual(await dump(target.url, '/app/'), await dump(source.url, '/app/'));
});
