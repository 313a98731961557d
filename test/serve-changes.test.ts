// The change log as a serve job option (`changes: { flush }`), on the real
// service process, real etcd and a directory store: the leader follows,
// the API and metrics show how far the log reaches, SIGTERM stores the open
// segment, and a restore to a revision reached only through the log is exact.
import { strict as assert } from 'node:assert';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import type { Etcd3 } from 'etcd3';
import { runCli } from './cli';
import { type EtcdPair, startEtcdPair } from './etcd-pair';
import { type ServeProcess, startServe } from './serve-harness';
import { JobChangeLog } from '../src/service/change-log';
import { loadServiceConfig } from '../src/service/config';
import { createLogger } from '../src/service/log';
import { openStore } from '../src/store/open';

let pair: EtcdPair;
let serve: ServeProcess | undefined;

before(async () => {
  pair = await startEtcdPair();
});

after(async () => {
  await serve?.stop(5000);
  await pair?.close();
});

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function content(c: Etcd3, revision?: string): Promise<Record<string, string>> {
  const q = c.getAll().prefix('/app/');
  return (revision ? q.revision(revision) : q).strings();
}

async function revisionNow(): Promise<string> {
  return (await pair.src.get('nothing').exec()).header.revision;
}

interface JobsJson {
  jobs: { name: string; changes?: { running: boolean; coveredRevision?: string; lagSeconds?: number; segments: number } }[];
}

test('serve follows the change log on a job with changes: the API and metrics show its reach, SIGTERM stores the open segment, and restore --to-revision is exact', async () => {
  const { source, target, src, dst, dir } = pair;
  for (let i = 0; i < 50; i++) await src.put(`/app/k${i}`).value(`v${i}`);
  serve = await startServe({
    dir,
    config: (port) =>
      [
        `listen: 127.0.0.1:${port}`,
        'jobs:',
        '  - name: logged',
        `    etcd: { url: "${source.url}", timeout: "5" }`,
        '    prefix: /app/',
        '    to: ./store',
        '    schedule: "0 0 1 1 *"',
        '    changes: { flush: 1s }',
        '',
      ].join('\n'),
  });
  await serve.waitForLog((l) => l.event === 'changes-from', 'the change log to start after a backup', 30_000);

  // Changes after the full backup: updates, deletes and new keys.
  for (let i = 0; i < 20; i++) await src.put(`/app/k${i}`).value(`changed-${i}`);
  for (let i = 20; i < 30; i++) await src.delete().key(`/app/k${i}`);
  await src.put('/app/new').value('after the backup');
  const middle = await revisionNow();
  const atMiddle = await content(src);

  const api = async () => (await (await fetch(`${serve!.url}/api/jobs`)).json()) as JobsJson;
  let reached: JobsJson['jobs'][number]['changes'];
  for (let i = 0; i < 100; i++) {
    reached = (await api()).jobs[0]!.changes;
    if (reached?.coveredRevision && Number(reached.coveredRevision) >= Number(middle)) break;
    await sleep(200);
  }
  assert.ok(reached?.running, JSON.stringify(reached));
  assert.ok(Number(reached!.coveredRevision) >= Number(middle), `the log reaches revision ${middle}: ${JSON.stringify(reached)}`);
  assert.ok(reached!.segments >= 1 && reached!.lagSeconds !== undefined && reached!.lagSeconds < 30, JSON.stringify(reached));
  const metrics = await (await fetch(`${serve.url}/metrics`)).text();
  assert.match(metrics, /^etcd_shield_changes_lag_seconds\{job="logged"\} [\d.e-]+$/m);
  assert.match(metrics, /^etcd_shield_changes_following\{job="logged"\} 1$/m);
  assert.match(metrics, /^etcd_shield_changes_segments_total\{job="logged"\} [1-9]\d*$/m);

  // Written just before the signal: only the final flush can store it.
  await src.put('/app/last').value('just before SIGTERM');
  const last = await revisionNow();
  serve.signal('SIGTERM');
  assert.equal((await serve.exited).code, 0, serve.stderr());
  assert.ok(serve.logs().some((l) => l.event === 'changes-stop' && Number(l.coveredRevision) >= Number(last)), `the open segment was stored on SIGTERM: ${serve.stderr().slice(-2000)}`);

  const store = join(dir, 'store');
  const listed = await runCli(['list', '--from', store, '--json']);
  assert.equal(listed.code, 0, listed.stderr);
  const windows = (JSON.parse(listed.stdout.toString()) as { windows: { fromRevision: number; toRevision: number }[] }).windows;
  assert.equal(windows.length, 1, JSON.stringify(windows));
  assert.ok(windows[0]!.toRevision >= Number(last), JSON.stringify(windows));

  for (const [rev, expected] of [
    [middle, atMiddle],
    [last, await content(src)],
  ] as const) {
    const r = await runCli(['restore', '--endpoints', target.url, '--from', store, '--to-revision', rev, '--prefix', '/app/', '--overwrite']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await content(dst), expected, `restore to revision ${rev}`);
  }
});

test('leadership lost and won back while the follower is still stopping: it starts again once the stop is done', async () => {
  const { source, dir } = pair;
  const config = loadServiceConfig(
    ['jobs:', '  - name: flip', `    etcd: { url: "${source.url}", timeout: "5" }`, '    prefix: /flip/', '    to: ./flip-store', '    schedule: "0 0 1 1 *"', '    changes: { flush: 1s }', ''].join('\n'),
    join(dir, 'flip.yaml'),
    { env: {} },
  );
  const job = config.jobs[0]!;
  const lines: { event?: string }[] = [];
  const sink = new Writable({ write: (c: Buffer, _e, cb) => (lines.push(...c.toString().trim().split('\n').map((l) => JSON.parse(l) as { event?: string })), cb()) });
  const log = createLogger({ pretty: false, destination: sink });
  mkdirSync(join(dir, 'flip-store'));
  const changes = new JobChangeLog(job, openStore(join(dir, 'flip-store'), { cwd: dir }), log, 1);
  const count = (event: string) => lines.filter((l) => l.event === event).length;
  const until = async (what: string, ok: () => boolean) => {
    for (const deadline = Date.now() + 30_000; !ok(); await sleep(50)) if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(lines)}`);
  };
  try {
    changes.start();
    await until('the change log to start after a backup', () => count('changes-from') === 1);
    // Lost, then won back before the stop has stored its segment and ended.
    const stopping = changes.stop();
    changes.start();
    assert.equal(count('changes-stop'), 0, 'the start came while the first follower was still stopping');
    await stopping;
    assert.equal(count('changes-stop'), 1);
    await until('the follower to start again', () => count('changes-from') === 2);
    assert.equal(changes.view().running, true);
    await src().put('/flip/after').value('seen');
    await until('a segment after the restart', () => changes.view().segments >= 1);
  } finally {
    await changes.stop();
  }
  assert.equal(changes.view().running, false);
});

const src = () => pair.src;
