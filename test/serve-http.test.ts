// The HTTP face of the real `etcd-shield serve` process, against real etcd
// (with a user and password), a directory store and the real S3-compatible
// server: health, readiness (a store down, a store frozen), the JSON API,
// starting runs with and without the token, metrics, and no secret in any
// answer or log line.
import { strict as assert } from 'node:assert';
import { after, before, describe, test } from 'node:test';
import { type EtcdCluster, makeTestDir, removeTestDir, startEtcd } from './harness';
import { startS3rver, type S3rver } from './s3rver';
import { type ServeProcess, startServe } from './serve-harness';

const TOKEN = 'api-Token-93f1c0de';
const ETCD_PW = 'etcd-Pw-77aa41';
const ROOT_PW = 'root-Pw-5512';
const S3_ENV = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };
const BUCKET = 'http-bucket';
const KEYS = 120;
const NEVER = '"0 0 0 1 1 *"'; // once a year: runs come from start-up and the API only

let etcd: EtcdCluster;
let s3: S3rver;
let dir: string;
let serve: ServeProcess;
/** Every body the service answered, for the secret check at the end. */
const seen: string[] = [];

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

async function http(path: string, init: RequestInit & { token?: string } = {}): Promise<Answer> {
  const headers = new Headers(init.headers);
  if (init.token !== undefined) headers.set('authorization', `Bearer ${init.token}`);
  const res = await fetch(serve.url + path, { ...init, headers });
  const text = await res.text();
  seen.push(text);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

function assertError(a: Answer, status: number, kind: string, message: RegExp): void {
  assert.equal(a.status, status, a.text);
  assert.deepEqual(Object.keys(a.json), ['error'], a.text);
  assert.deepEqual(Object.keys(a.json.error).sort(), ['hint', 'kind', 'message'], a.text);
  assert.equal(a.json.error.kind, kind, a.text);
  assert.match(a.json.error.message, message);
  assert.ok(a.json.error.hint.length > 10, a.text);
  assert.doesNotMatch(a.text, /\n\s+at /, 'no stack trace');
}

/** One sample of a metric, or undefined. */
function sample(text: string, name: string, job?: string): number | undefined {
  const labels = job === undefined ? '' : `\\{job="${job}"\\}`;
  const m = new RegExp(`^${name}${labels} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

async function runUntilDone(id: string): Promise<any> {
  for (let i = 0; i < 300; i++) {
    const r = await http(`/api/runs/${id}`);
    assert.equal(r.status, 200, r.text);
    if (r.json.status !== 'running') return r.json;
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.fail(`run ${id} did not end within 30 s`);
}

before(async () => {
  dir = makeTestDir();
  [etcd, s3] = await Promise.all([
    startEtcd({ rbac: { rootPassword: ROOT_PW, users: [{ name: 'backup', password: ETCD_PW, readPrefix: '/app/' }] } }),
    startS3rver({ bucket: BUCKET }),
  ]);
  for (let i = 0; i < KEYS; i++) await etcd.etcdctl(['put', `/app/k${String(i).padStart(3, '0')}`, `value-${i}`]);
  await etcd.etcdctl(['put', '/other/x', 'not in the prefix']);
  const etcdBlock = `{ url: "${etcd.url}", timeout: "10", auth: "Role-Based Authentication", username: backup, password_env: ETCD_PW }`;
  serve = await startServe({
    dir,
    config: (port) =>
      [
        `listen: 127.0.0.1:${port}`,
        'token_env: API_TOKEN',
        'jobs:',
        '  - name: main',
        `    etcd: ${etcdBlock}`,
        '    prefix: /app/',
        '    to: ./stores/main',
        `    schedule: ${NEVER}`,
        '    keep: { last: 5 }',
        '  - name: remote',
        `    etcd: ${etcdBlock}`,
        '    prefix: /app/',
        `    to: s3://${BUCKET}/etcd/remote`,
        `    schedule: ${NEVER}`,
        '',
      ].join('\n'),
    env: { ...S3_ENV, AWS_ENDPOINT_URL_S3: s3.endpoint, ETCD_PW, API_TOKEN: TOKEN },
    // Debug: the per-request lines are logged too, and must not carry the token either.
    args: ['--debug'],
  });
  // Empty stores: each job backs up once at start-up.
  await serve.waitForCount((l) => l.event === 'end' && l.status === 'succeeded', 2, 'the start-up backups of both jobs');
});

after(async () => {
  await serve?.stop(5000);
  await Promise.all([etcd?.stop(), s3?.stop()]);
  await removeTestDir(dir);
});

describe('serve over HTTP', () => {
  test('healthz; readyz reaches both stores', async () => {
    const h = await http('/healthz');
    assert.equal(h.status, 200);
    assert.deepEqual(h.json, { status: 'ok' });
    const r = await http('/readyz');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.status, 'ready');
    assert.deepEqual(
      r.json.checks.map((c: { job: string; ok: boolean }) => [c.job, c.ok]),
      [
        ['main', true],
        ['remote', true],
      ],
    );
    assert.equal(r.json.checks[1].store, `s3://${BUCKET}/etcd/remote`);
  });

  test('GET /api/jobs: the role, and each job with its schedule, next run and the start-up run', async () => {
    const r = await http('/api/jobs');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.headers.get('cache-control'), 'no-store');
    assert.equal(r.json.role.leader, true);
    assert.equal(r.json.role.ha, false);
    assert.match(r.json.role.instance, /:\d+$/);
    assert.deepEqual(r.json.jobs.map((j: { name: string }) => j.name), ['main', 'remote']);
    const main = r.json.jobs[0];
    assert.equal(main.schedule, '0 0 0 1 1 *');
    assert.equal(main.timezone, 'UTC');
    assert.equal(main.prefix, '/app/');
    assert.equal(main.compress, 'zstd');
    assert.equal(main.encrypted, false);
    assert.deepEqual(main.keep, { last: 5 });
    assert.ok(Date.parse(main.nextRun) > Date.now(), main.nextRun);
    assert.equal(main.running, false);
    assert.equal(main.health, 'ok');
    assert.equal(main.lastRun.status, 'succeeded');
    assert.equal(main.lastRun.trigger, 'startup');
    assert.equal(main.lastRun.keys, KEYS, 'the prefix only');
    assert.match(main.lastRun.revision, /^\d+$/);
    assert.ok(main.lastRun.bytes > 0 && main.lastRun.durationSeconds > 0, JSON.stringify(main.lastRun));
    assert.deepEqual(main.lastSuccess, main.lastRun);
    assert.equal(main.backupsKept, 1);
    assert.deepEqual([main.successes, main.failures, main.skips], [1, 0, 0]);

    const one = await http('/api/jobs/remote');
    assert.equal(one.status, 200);
    assert.equal(one.json.name, 'remote');
    assert.equal(one.json.store, `s3://${BUCKET}/etcd/remote`);
    assertError(await http('/api/jobs/nope'), 404, 'notFound', /no job "nope"/);
    assertError(await http('/api/nothing-here'), 404, 'notFound', /no route GET \/api\/nothing-here/);
  });

  test('GET /api/jobs/NAME/backups: the catalogue of a directory and of an S3 store', async () => {
    for (const name of ['main', 'remote']) {
      const job = (await http(`/api/jobs/${name}`)).json;
      const r = await http(`/api/jobs/${name}/backups`);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.backups.length, 1, r.text);
      const b = r.json.backups[0];
      assert.equal(b.name, job.lastRun.backup);
      assert.equal(b.keys, KEYS);
      assert.equal(b.revision, job.lastRun.revision);
      assert.equal(b.storedBytes, job.lastRun.bytes);
      assert.equal(b.prefix, '/app/');
      assert.deepEqual(r.json.incomplete, []);
      assert.deepEqual(r.json.unfinished, []);
      assert.deepEqual(r.json.problems, []);
    }
    assertError(await http('/api/jobs/nope/backups'), 404, 'notFound', /no job "nope"/);
  });

  test('POST /api/jobs/NAME/run: 401 without the token, 403 with another, 404 for an unknown job, 409 while it runs, 202 then the run', async () => {
    assertError(await http('/api/jobs/main/run', { method: 'POST' }), 401, 'unauthenticated', /POST \/api\/jobs\/main\/run needs the API token/);
    assertError(await http('/api/jobs/main/run', { method: 'POST', headers: { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` } }), 401, 'unauthenticated', /another form/);
    assertError(await http('/api/jobs/main/run', { method: 'POST', token: `${TOKEN}x` }), 403, 'forbidden', /not the service's API token/);
    assertError(await http('/api/jobs/nope/run', { method: 'POST', token: TOKEN }), 404, 'notFound', /no job "nope"/);
    assert.equal((await http('/api/jobs/main')).json.runs.length, 1, 'no refused request started a run');

    // A frozen etcd holds the run, so the second request surely finds it running.
    etcd.nodes[0]!.pause();
    let started: Answer;
    try {
      started = await http('/api/jobs/main/run', { method: 'POST', token: TOKEN, headers: { 'content-type': 'application/json' } });
      assert.equal(started.status, 202, started.text);
      assert.equal(started.json.run.status, 'running');
      assert.equal(started.json.run.trigger, 'api');
      assert.equal(started.headers.get('location'), `/api/runs/${encodeURIComponent(started.json.run.id)}`);
      const busy = await http('/api/jobs/main/run', { method: 'POST', token: TOKEN });
      assertError(busy, 409, 'busy', new RegExp(`job "main" is already running \\(run ${started.json.run.id}`));
      const job = (await http('/api/jobs/main')).json;
      assert.equal(job.running, true);
      assert.equal(job.current.id, started.json.run.id);
      assert.equal(sample((await http('/metrics')).text, 'etcd_shield_running', 'main'), 1);
    } finally {
      etcd.nodes[0]!.resume();
    }
    const done = await runUntilDone(started.json.run.id);
    assert.equal(done.status, 'succeeded', JSON.stringify(done));
    assert.equal(done.keys, KEYS);
    assert.ok(done.finishedAt && done.durationSeconds > 0, JSON.stringify(done));
    assertError(await http('/api/runs/no-such-run'), 404, 'notFound', /no run "no-such-run"/);
  });

  test('GET /metrics: per-job values after the runs, counters with _total, standard process metrics', async () => {
    const job = (await http('/api/jobs/main')).json;
    const m = await http('/metrics');
    assert.equal(m.status, 200);
    assert.match(m.headers.get('content-type')!, /^text\/plain; version=0\.0\.4/);
    const t = m.text;
    assert.equal(sample(t, 'etcd_shield_backup_successes_total', 'main'), 2);
    assert.equal(sample(t, 'etcd_shield_backup_failures_total', 'main'), 0);
    assert.equal(sample(t, 'etcd_shield_backup_skips_total', 'main'), 0);
    assert.equal(sample(t, 'etcd_shield_backup_successes_total', 'remote'), 1);
    assert.equal(sample(t, 'etcd_shield_last_run_keys', 'main'), KEYS);
    assert.equal(sample(t, 'etcd_shield_last_run_stored_bytes', 'main'), job.lastSuccess.bytes);
    assert.equal(sample(t, 'etcd_shield_last_run_revision', 'main'), Number(job.lastSuccess.revision));
    assert.equal(sample(t, 'etcd_shield_last_run_duration_seconds', 'main'), job.lastRun.durationSeconds);
    assert.equal(sample(t, 'etcd_shield_last_success_timestamp_seconds', 'main'), Date.parse(job.lastSuccess.finishedAt) / 1000);
    assert.equal(sample(t, 'etcd_shield_running', 'main'), 0);
    assert.equal(sample(t, 'etcd_shield_backups_kept', 'main'), 2);
    assert.equal(sample(t, 'etcd_shield_leader'), 1);
    for (const name of ['backup_successes_total', 'backup_failures_total', 'backup_skips_total']) assert.match(t, new RegExp(`^# TYPE etcd_shield_${name} counter$`, 'm'));
    for (const name of ['last_success_timestamp_seconds', 'last_run_duration_seconds', 'last_run_keys', 'last_run_stored_bytes', 'last_run_revision', 'running', 'backups_kept', 'leader']) {
      assert.match(t, new RegExp(`^# TYPE etcd_shield_${name} gauge$`, 'm'));
    }
    assert.ok(sample(t, 'process_cpu_seconds_total')! > 0, 'process metrics keep their standard names');
  });

  test('a frozen store: readyz answers 503 within its bound and names the store that did not answer', async () => {
    s3.proc.kill('SIGSTOP');
    let r: Answer;
    try {
      r = await http('/readyz');
    } finally {
      s3.proc.kill('SIGCONT');
    }
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json.status, 'not ready');
    const [main, remote] = r.json.checks;
    assert.equal(main.ok, true, 'the directory store still answers');
    assert.equal(remote.ok, false);
    assert.match(remote.error.message, new RegExp(`s3://${BUCKET}/etcd/remote.* did not answer within 5 s`));
    assert.equal((await http('/readyz')).status, 200, 'ready again once the store answers');
  });

  test('a store that is down: readyz 503 with its error, the listing 502, a run fails with a store error, and the service stays up', async () => {
    await s3.kill();
    const r = await http('/readyz');
    assert.equal(r.status, 503, r.text);
    const remote = r.json.checks[1];
    assert.equal(remote.ok, false);
    assert.equal(remote.error.kind, 'store', r.text);
    assert.equal(remote.store, `s3://${BUCKET}/etcd/remote`);
    const refused = new RegExp(`${s3.endpoint.replace(/[.]/g, '\\.')}.*ECONNREFUSED`);
    assert.match(remote.error.message, refused, 'the fault hit: the endpoint refuses connections');
    assertError(await http('/api/jobs/remote/backups'), 502, 'store', refused);
    assert.equal((await http('/api/jobs/main/backups')).status, 200, 'the other store still lists');

    const started = await http('/api/jobs/remote/run', { method: 'POST', token: TOKEN });
    assert.equal(started.status, 202, started.text);
    const done = await runUntilDone(started.json.run.id);
    assert.equal(done.status, 'failed', JSON.stringify(done));
    assert.equal(done.error.kind, 'store', JSON.stringify(done));
    assert.match(done.error.message, refused);
    const job = (await http('/api/jobs/remote')).json;
    assert.equal(job.health, 'failing');
    assert.equal(sample((await http('/metrics')).text, 'etcd_shield_backup_failures_total', 'remote'), 1);
    assert.equal((await http('/healthz')).status, 200);
    assert.equal(serve.proc.exitCode, null, 'the service is still up');
  });

  test('no secret in any answer, page or log line: not the API token, not the etcd passwords', async () => {
    for (const path of ['/', '/app.js', '/style.css', '/api/jobs', '/metrics', '/readyz', '/api/jobs/main/backups']) await http(path);
    const page = seen.find((t) => t.includes('<title>etcd-shield</title>'));
    assert.ok(page, 'the page was read');
    const log = serve.stderr();
    assert.ok(serve.logs().some((l) => l.event === 'http' && l.method === 'POST' && Number(l.status) === 403), 'the log holds the requests that carried a token');
    for (const secret of [TOKEN, ETCD_PW, ROOT_PW]) {
      for (const text of seen) assert.ok(!text.includes(secret), `a response holds a secret: ${text.slice(0, 300)}`);
      assert.ok(!log.includes(secret), 'the log holds a secret');
    }
    assert.ok(serve.logs().every((l) => !('headers' in l) && !('req' in l)), 'no request headers are logged');
  });

  test('while it stops (SIGTERM, a backup still running): readyz 503 stopping, new runs 409, the API answers until the backup ends', async () => {
    etcd.nodes[0]!.pause();
    let paused = true;
    try {
      const started = await http('/api/jobs/main/run', { method: 'POST', token: TOKEN });
      assert.equal(started.status, 202, started.text);
      serve.signal('SIGTERM');
      await serve.waitForLog((l) => l.event === 'shutdown' && Array.isArray(l.running), 'the shutdown to wait for the running backup');
      const r = await http('/readyz');
      assert.equal(r.status, 503, r.text);
      assert.equal(r.json.status, 'stopping');
      assert.equal(r.json.stopping, true);
      assertError(await http('/api/jobs/main/run', { method: 'POST', token: TOKEN }), 409, 'busy', /shutting down/);
      assert.equal((await http(`/api/runs/${started.json.run.id}`)).json.status, 'running');
      etcd.nodes[0]!.resume();
      paused = false;
      const end = await serve.waitForLog((l) => l.event === 'end' && l.run === started.json.run.id, 'the running backup to end');
      assert.equal(end.status, 'succeeded');
      assert.equal((await serve.exited).code, 0, serve.stderr());
    } finally {
      if (paused) etcd.nodes[0]!.resume();
    }
  });
});
