// `etcd-shield serve --check` through the real CLI, on real files.
import { strict as assert } from 'node:assert';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile, execFileSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { assertNoCrash, childEnv, expectCode, repoRoot, runCli } from './cli';

const PASSWORD = 'pw-Secret-4711';
let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'serve-check-'));
  execFileSync('age-keygen', ['-o', join(dir, 'key.txt')], { stdio: 'ignore' });
});
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

const GOOD = [
  'listen: 127.0.0.1:9469',
  'token_env: API_TOKEN',
  'jobs:',
  '  - name: main',
  '    etcd: { url: "http://127.0.0.1:2379", auth: "Role-Based Authentication", username: backup, password_env: ETCD_PW }',
  '    prefix: /registry/',
  '    to: ./backups/main',
  '    schedule: "0 */15 * * * *"',
  '    timezone: Europe/Berlin',
  '    compress: gzip',
  '    encrypt_to: [age1g952zdcgamzz30qfvcshkqu27kd2kuvfrcplk5ju9reesx6gqa9st0kczk]',
  '    keep: { last: 4, daily: 7 }',
  '    verify: "0 30 3 * * *"',
  '    identity_file: key.txt',
  '',
].join('\n');

test('a valid file: exit 0 and a summary per job, with the next run; no secret printed', async () => {
  const r = await runCli(['serve', '--check', '--config', file('good.yaml', GOOD)], { env: { ETCD_PW: PASSWORD, API_TOKEN: 'tok-Secret-0815' } });
  expectCode(r, 0, 'serve --check on a valid file');
  const out = r.stdout.toString('utf8');
  assert.match(out, /good\.yaml: ok, 1 job/);
  assert.match(out, /^job "main"$/m);
  assert.match(out, /^ {2}schedule {2}0 \*\/15 \* \* \* \* \(Europe\/Berlin\), next \d{4}-\d\d-\d\dT\d\d:(00|15|30|45):00Z$/m);
  assert.match(out, /^ {2}store {5}\.\/backups\/main \(directory .*backups\/main\)$/m);
  assert.match(out, /^ {2}compress {2}gzip$/m);
  assert.match(out, /^ {2}encrypt {3}age, 1 recipient$/m);
  assert.match(out, /^ {2}keep {6}last 4, daily 7$/m);
  assert.match(out, /^token {5}set \(hidden\)$/m);
  assert.ok(!out.includes(PASSWORD) && !r.stderr.includes(PASSWORD) && !out.includes('tok-Secret'), out);
});

test('errors: exit 1, each line names the file, line, job and field', async () => {
  const bad = GOOD.replace('"0 */15 * * * *"', '"0 */15 * *"').replace('compress: gzip', 'compress: lz4');
  const r = await runCli(['serve', '--check', '--config', file('bad.yaml', bad)], { env: { API_TOKEN: 'x' } });
  expectCode(r, 1, 'serve --check on a bad file');
  assertNoCrash(r, 'serve --check on a bad file');
  const f = join(dir, 'bad.yaml');
  assert.ok(r.stderr.includes(`${f}:5: job "main": etcd.password_env: environment variable ETCD_PW is not set\n`), r.stderr);
  assert.ok(r.stderr.includes(`${f}:8: job "main": schedule: "0 */15 * *" is not a cron expression`), r.stderr);
  assert.ok(r.stderr.includes(`${f}:10: job "main": compress: "lz4" is not one of zstd, gzip, none\n`), r.stderr);
  assert.match(r.stderr, /bad\.yaml is not valid: 3 errors \(listed above\)/);
  assert.equal(r.stdout.length, 0);
});

test('a job in snapshot mode: the summary says so; with a change log it is refused, naming the line', async () => {
  const snap = GOOD.replace('prefix: /registry/', 'prefix: ""').replace('password_env: ETCD_PW }', 'password_env: ETCD_PW, mode: snapshot }');
  const r = await runCli(['serve', '--check', '--config', file('snap.yaml', snap)], { env: { ETCD_PW: PASSWORD, API_TOKEN: 'x' } });
  expectCode(r, 0, 'serve --check on a snapshot job');
  assert.match(r.stdout.toString('utf8'), /^ {2}mode {6}snapshot \(etcd's own database snapshot, from the first healthy member\)$/m);
  const followed = await runCli(['serve', '--check', '--config', file('snap-changes.yaml', `${snap}    changes: {}\n`)], { env: { ETCD_PW: PASSWORD, API_TOKEN: 'x' } });
  expectCode(followed, 1, 'serve --check on a snapshot job with a change log');
  assert.ok(followed.stderr.includes(`${join(dir, 'snap-changes.yaml')}:15: job "main": changes: cannot follow a job in snapshot mode`), followed.stderr);
  const prefixed = await runCli(['serve', '--check', '--config', file('snap-prefix.yaml', snap.replace('prefix: ""', 'prefix: /registry/'))], { env: { ETCD_PW: PASSWORD, API_TOKEN: 'x' } });
  expectCode(prefixed, 1, 'serve --check on a snapshot job with a prefix');
  assert.match(prefixed.stderr, /job "main": prefix: .*snapshot/, prefixed.stderr);
});

test('no jobs, a missing file, serve without --config, a bad identity file: exit 1 with a clear message', async () => {
  const none = await runCli(['serve', '--check', '--config', file('none.yaml', 'listen: 127.0.0.1:9469\njobs: []\n')]);
  expectCode(none, 1, 'no jobs');
  assert.match(none.stderr, /none\.yaml:2: jobs: no jobs: give at least one job/);
  const missing = await runCli(['serve', '--check', '--config', join(dir, 'absent.yaml')]);
  expectCode(missing, 1, 'missing file');
  assert.match(missing.stderr, /cannot read the service configuration .*absent\.yaml: ENOENT/);
  const serve = await runCli(['serve']);
  expectCode(serve, 1, 'serve without --config');
  assert.match(serve.stderr, /serve needs --config FILE\n {2}what to do: give the service configuration file/);
  const badKey = await runCli(['serve', '--check', '--config', file('badkey.yaml', GOOD.replace('key.txt', 'good.yaml'))], { env: { ETCD_PW: PASSWORD, API_TOKEN: 'tok' } });
  expectCode(badKey, 1, 'an identity file that is no identity');
  assert.match(badKey.stderr, /job "main": identity_file: identity file .*good\.yaml line 1 is not an age identity/);
});

test('examples/serve.yaml passes the check as shipped', async () => {
  const r = await runCli(['serve', '--check', '--config', 'examples/serve.yaml']);
  expectCode(r, 0, 'serve --check on examples/serve.yaml');
  assert.match(r.stdout.toString('utf8'), /serve\.yaml: ok, 1 job/);
});

test('the one-file SHIELD copy, alone, refuses serve with a clear message (yaml and croner are left out)', async () => {
  const alone = join(dir, 'alone');
  mkdirSync(alone);
  const copy = join(alone, 'etcd');
  copyFileSync(join(repoRoot, 'dist', 'etcd-shield.js'), copy);
  const cfg = file('alone.yaml', GOOD);
  const r = await new Promise<{ code: number | null; stderr: string }>((resolve) =>
    execFile(process.execPath, [copy, 'serve', '--check', '--config', cfg], { cwd: alone, env: childEnv() }, (err, _out, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stderr }),
    ),
  );
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /serve needs the yaml and croner packages, which this copy lacks/);
  assert.match(r.stderr, /use the npm-installed etcd-shield for serve/);
});
