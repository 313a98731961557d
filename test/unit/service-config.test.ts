import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { inspect } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { ConfigError, ERROR_KINDS } from '../../src/errors';
import { loadServiceConfig, ServiceConfigError, type LoadOptions, type ServiceConfig } from '../../src/service/config';
import { makeCerts, type CertSet } from '../certs';

const PASSWORD = 'pw-Secret-4711';
const TOKEN = 'tok-Secret-0815';
// Real X25519 recipients (public keys), as age-keygen prints them.
const R1 = 'age1g952zdcgamzz30qfvcshkqu27kd2kuvfrcplk5ju9reesx6gqa9st0kczk';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'service-config-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const opts = (env: Record<string, string> = {}): LoadOptions => ({ env, baseDir: dir });

/** A valid one-job file; `job` lines replace or add to the job's. */
function yaml(job: string[] = [], top: string[] = []): string {
  return [
    'listen: 127.0.0.1:9469',
    ...top,
    'jobs:',
    '  - name: main',
    ...['etcd: { url: "http://127.0.0.1:2379", auth: "Role-Based Authentication", username: backup, password_env: ETCD_PW }', 'to: ./store/main', 'schedule: "0 */15 * * * *"', ...job].map((l) => `    ${l}`),
    '',
  ].join('\n');
}

function load(text: string, env: Record<string, string> = { ETCD_PW: PASSWORD }): ServiceConfig {
  return loadServiceConfig(text, 'serve.yaml', opts(env));
}

/** The error's problem lines; fails if it loads. */
function problems(text: string, env: Record<string, string> = { ETCD_PW: PASSWORD }): string[] {
  try {
    load(text, env);
  } catch (err) {
    assert.ok(err instanceof ServiceConfigError, `not a ServiceConfigError: ${String(err)}`);
    assert.ok(err instanceof ConfigError);
    assert.equal(err.kind, 'config');
    assert.ok(err.kind in ERROR_KINDS);
    for (const l of err.lines()) assert.ok(err.message.includes(l), 'the message lists every line');
    return err.lines();
  }
  assert.fail('the config loaded');
}

function oneProblem(text: string, re: RegExp, env?: Record<string, string>): string {
  const lines = problems(text, env);
  assert.equal(lines.length, 1, `expected one problem:\n${lines.join('\n')}`);
  assert.match(lines[0]!, re);
  return lines[0]!;
}

describe('a valid file', () => {
  test('loads with defaults, the password from the environment, and the next run', () => {
    const c = load(yaml(['prefix: /registry/']));
    assert.deepEqual(c.listen, { host: '127.0.0.1', port: 9469, loopback: true });
    assert.equal(c.token, undefined);
    assert.equal(c.jobs.length, 1);
    const j = c.jobs[0]!;
    assert.equal(j.name, 'main');
    assert.equal(j.etcd.password, PASSWORD);
    assert.equal(j.etcd.username, 'backup');
    assert.equal(j.prefix, '/registry/');
    assert.deepEqual(j.store, { kind: 'dir', path: join(dir, 'store/main') });
    assert.equal(j.compress, 'zstd');
    assert.equal(j.timezone, 'UTC');
    assert.deepEqual(j.encryptTo, []);
    assert.deepEqual(j.keep, {});
    assert.equal(j.nextRun(new Date('2026-12-02T08:01:02Z'))?.toISOString(), '2026-12-02T08:15:00.000Z');
  });

  test('listen defaults to 127.0.0.1:9469; every job setting is read', () => {
    const text = [
      'ha: { election: /etcd-shield/leader }',
      'jobs:',
      '  - name: a-1_b',
      '    etcd: { url: "http://127.0.0.1:2379", timeout: 5 }',
      '    to: s3://backups/etcd/a',
      '    schedule: "30 2 * * *"',
      '    timezone: Europe/Berlin',
      '    compress: gzip',
      `    encrypt_to: [${R1}]`,
      '    keep: { last: 4, hourly: 24, daily: 7, weekly: 4, monthly: 6, yearly: 0 }',
      '    verify: "0 30 3 * * *"',
      '    identity_file: keys/backup.txt',
    ].join('\n');
    const c = load(text);
    assert.equal(c.describe().listen, '127.0.0.1:9469');
    assert.deepEqual(c.ha, { election: '/etcd-shield/leader', job: 'a-1_b', ttl: 10 }, 'ha defaults: the first job, a 10 s lease');
    assert.deepEqual(c.describe().ha, { election: '/etcd-shield/leader', job: 'a-1_b', ttl: 10 });
    const j = c.jobs[0]!;
    assert.deepEqual(j.store, { kind: 's3', bucket: 'backups', prefix: 'etcd/a' });
    assert.equal(j.etcd.timeoutMs, 5000);
    assert.equal(j.compress, 'gzip');
    assert.deepEqual(j.encryptTo, [R1]);
    assert.deepEqual(j.keep, { last: 4, hourly: 24, daily: 7, weekly: 4, monthly: 6, yearly: 0 });
    assert.equal(j.verify, '0 30 3 * * *');
    assert.equal(j.identityFile, resolve(opts({}).baseDir!, 'keys/backup.txt'));
    // 02:30 in Berlin in winter is 01:30 UTC.
    assert.equal(j.nextRun(new Date('2026-12-02T08:00:00Z'))?.toISOString(), '2026-12-03T01:30:00.000Z');
  });

  test('secrets from files: password, token, client key (PEM kept whole), recipients; relative to baseDir', async () => {
    const certs: CertSet = await makeCerts(join(dir, 'pki'));
    writeFileSync(join(dir, 'pw'), `${PASSWORD}\n`);
    writeFileSync(join(dir, 'token'), `${TOKEN}\n`);
    writeFileSync(join(dir, 'recipients.txt'), `# ops team\n\n${R1}\n`);
    const text = [
      'listen: 0.0.0.0:9469',
      'token_file: token',
      'jobs:',
      '  - name: tls',
      `    etcd: { url: "https://127.0.0.1:2379", auth: Both, username: backup, password_file: pw, client_cert_file: ${certs.clientCert}, client_key_file: ${certs.clientKey}, ca_cert_file: ${certs.caCert} }`,
      '    to: /var/backups/tls',
      '    schedule: "@hourly"',
      '    encrypt_to_file: recipients.txt',
    ].join('\n');
    const c = load(text, {});
    assert.equal(c.token, TOKEN);
    assert.equal(c.listen.loopback, false);
    const e = c.jobs[0]!.etcd;
    assert.equal(e.password, PASSWORD);
    assert.equal(e.clientKey, certs.clientKeyPem);
    assert.equal(e.clientCert, certs.clientCertPem);
    assert.equal(e.auth, 'both');
    assert.deepEqual(c.jobs[0]!.encryptTo, [R1]);
    const shown = [JSON.stringify(c), inspect(c, { depth: 10 }), String(c), JSON.stringify(c.jobs[0]), inspect(c.jobs[0], { depth: 10 })].join('\n');
    for (const secret of [PASSWORD, TOKEN, certs.clientKeyPem.split('\n')[1]!]) assert.ok(!shown.includes(secret), `a secret shows in:\n${shown}`);
    assert.match(JSON.stringify(c), /"password":"set"/);
    assert.match(JSON.stringify(c), /"token":"set"/);
    assert.deepEqual(Object.keys(c.jobs[0]!).includes('etcd'), false, 'the connection is not an own enumerable key');
  });

  test('the token from the environment; an inline password is accepted and hidden', () => {
    const c = loadServiceConfig(yaml([], ['token_env: API_TOKEN']).replace('password_env: ETCD_PW', `password: ${PASSWORD}`), 'serve.yaml', opts({ API_TOKEN: TOKEN }));
    assert.equal(c.token, TOKEN);
    assert.equal(c.jobs[0]!.etcd.password, PASSWORD);
    assert.ok(!JSON.stringify(c).includes(PASSWORD) && !JSON.stringify(c).includes(TOKEN));
  });
});

describe('every problem, named by job, field and line', () => {
  test('the environment variable of a secret is not set', () => {
    assert.equal(oneProblem(yaml(), /etcd\.password_env/, {}), 'serve.yaml:4: job "main": etcd.password_env: environment variable ETCD_PW is not set');
  });

  test('a secret file that cannot be read, or is empty', () => {
    writeFileSync(join(dir, 'empty'), '\n');
    oneProblem(yaml().replace('password_env: ETCD_PW', 'password_file: nope'), new RegExp(`^serve\\.yaml:4: job "main": etcd\\.password_file: cannot read ${join(dir, 'nope')}: ENOENT$`));
    oneProblem(yaml().replace('password_env: ETCD_PW', 'password_file: empty'), /etcd\.password_file: .*empty is empty/);
  });

  test('a secret given twice, _env on a field that is not secret, an unknown etcd field', () => {
    oneProblem(yaml().replace('password_env: ETCD_PW', `password_env: ETCD_PW, password: ${PASSWORD}`), /job "main": etcd\.password: password is already given as password_env; give only one/);
    oneProblem(yaml().replace('username: backup', 'username_env: U, username: backup'), /etcd\.username_env: unknown field; the etcd block takes .*password_env/);
  });

  test('the existing field checks apply: auth needs a password, a bad url, a bad timeout, a wrong type', () => {
    oneProblem(yaml().replace(', password_env: ETCD_PW', ''), /^serve\.yaml:4: job "main": etcd\.password: required when auth is "Role-Based Authentication"$/);
    const lines = problems(yaml().replace('"http://127.0.0.1:2379"', '"http://a:1,https://b:2", timeout: "-3", overwrite: [1]'));
    assert.equal(lines.length, 3, lines.join('\n'));
    assert.match(lines.join('\n'), /etcd\.url: mixes http/);
    assert.match(lines.join('\n'), /etcd\.timeout: "-3" must be more than zero/);
    assert.match(lines.join('\n'), /etcd\.overwrite: has the wrong type/);
    oneProblem(yaml().replace('url: "http://127.0.0.1:2379", ', ''), /^serve\.yaml:4: job "main": etcd\.url: is required/);
  });

  test('a secret of the wrong type is not shown', () => {
    const line = oneProblem(yaml().replace('password_env: ETCD_PW', 'password: 4711123'), /etcd\.password: has the wrong type/);
    assert.ok(!line.includes('4711123'), line);
  });

  test('prefix given both at job level and in etcd', () => {
    oneProblem(yaml(['prefix: /a/']).replace('username: backup', 'username: backup, prefix: /b/'), /^serve\.yaml:\d+: job "main": prefix: is also given as etcd\.prefix/);
  });

  test('a config with no jobs is refused', () => {
    assert.deepEqual(problems('listen: 127.0.0.1:9469\njobs: []\n'), ['serve.yaml:2: jobs: no jobs: give at least one job (name, etcd, to, schedule)']);
    assert.match(problems('listen: 127.0.0.1:9469\n').join('\n'), /jobs: no jobs/);
    assert.match(problems('jobs: main\n').join('\n'), /jobs: must be a list/);
  });

  test('duplicate and bad job names, a job that is not a map', () => {
    const dup = `${yaml()}  - name: main\n    etcd: { url: "http://127.0.0.1:2379" }\n    to: ./store/other\n    schedule: "@daily"\n`;
    assert.equal(oneProblem(dup, /names must be unique/), 'serve.yaml:7: job "main": name: is also the name of job 1; names must be unique');
    oneProblem(yaml().replace('name: main', 'name: Main Job'), /job "Main Job": name: "Main Job" may hold only a-z, 0-9, _ and -/);
    oneProblem(yaml().replace('name: main', 'name: ""'), /job 1: name: must be a non-empty string/);
    oneProblem('jobs:\n  - just a string\n', /^serve\.yaml:2: job 1: must be a map/);
  });

  test('two jobs writing into one store', () => {
    const two = `${yaml()}  - name: other\n    etcd: { url: "http://127.0.0.1:2379" }\n    to: store/main/\n    schedule: "@daily"\n`;
    oneProblem(two, /^serve\.yaml:9: job "other": to: is also the store of job "main"/);
  });

  test('verify on an encrypted job needs identity_file (verifying reads the backups)', () => {
    oneProblem(yaml([`encrypt_to: [${R1}]`, 'verify: "0 30 3 * * *"']), /job "main": identity_file: is required with verify on an encrypted job/);
    assert.equal(load(yaml([`encrypt_to: [${R1}]`])).jobs[0]!.identityFile, undefined);
  });

  test('changes: { flush } turns on the change log; 5 s by default; unknown keys and 0 refused', () => {
    assert.equal(load(yaml()).jobs[0]!.changes, undefined);
    assert.deepEqual(load(yaml(['changes: {}'])).jobs[0]!.changes, { flushSeconds: 5 });
    assert.deepEqual(load(yaml(['changes: { flush: 2s }'])).jobs[0]!.changes, { flushSeconds: 2 });
    oneProblem(yaml(['changes: { flush: 0 }']), /changes\.flush: must be at least 1 second/);
    oneProblem(yaml(['changes: { every: 5s }']), /changes\.every: unknown setting; changes takes flush/);
    oneProblem(yaml(['changes: yes']), /changes: must be a map, e\.g\. \{ flush: 5s \}/);
  });

  test('shutdown_grace: seconds, "90s" or "2m"; 60 s by default', () => {
    assert.equal(load(yaml()).settings.shutdownGraceSeconds, 60);
    assert.equal(load(yaml([], ['shutdown_grace: 5'])).settings.shutdownGraceSeconds, 5);
    assert.equal(load(yaml([], ['shutdown_grace: "2m"'])).settings.shutdownGraceSeconds, 120);
    oneProblem(yaml([], ['shutdown_grace: soon']), /shutdown_grace: "soon" is not a duration/);
  });

  test('a bad cron, a bad verify cron, a bad time zone', () => {
    assert.equal(
      oneProblem(yaml().replace('"0 */15 * * * *"', '"0 */15 * *"'), /schedule/),
      'serve.yaml:6: job "main": schedule: "0 */15 * *" is not a cron expression (invalid configuration format (\'0 */15 * *\'), exactly five, six, or seven space separated parts are required.)',
    );
    oneProblem(yaml(['verify: "61 * * * *"']), /^serve\.yaml:7: job "main": verify: "61 \* \* \* \*" is not a cron expression/);
    oneProblem(yaml(['timezone: Mars/Olympus_Mons']), /^serve\.yaml:7: job "main": timezone: "Mars\/Olympus_Mons" is not an IANA time zone/);
    oneProblem(yaml().replace('schedule: "0 */15 * * * *"', 'schedule: 5'), /job "main": schedule: must be a cron expression in quotes/);
  });

  test('a bad store URL', () => {
    oneProblem(yaml().replace('./store/main', 'ftp://host/x'), /^serve\.yaml:5: job "main": to: store URL "ftp:\/\/host\/x" is not usable: ftp: is not a store scheme/);
    oneProblem(yaml().replace('to: ./store/main', 'to: s3://user:pass@bucket/x'), /job "main": to: store URL "s3:\/\/\*\*\*@bucket\/x"/);
  });

  test('bad recipients, each named by its index; a secret key given by mistake is not shown', () => {
    const key = 'AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ';
    const lines = problems(yaml([`encrypt_to: [${R1}, age1nope, ${key}]`]));
    assert.deepEqual(lines, [
      'serve.yaml:7: job "main": encrypt_to[1]: "age1nope" is not a valid age X25519 recipient (age1... with a valid checksum)',
      'serve.yaml:7: job "main": encrypt_to[2]: this is an age identity (a secret key), not a recipient; it is not shown here',
    ]);
    writeFileSync(join(dir, 'no-recipients'), '# nobody\n');
    oneProblem(yaml(['encrypt_to_file: no-recipients']), /encrypt_to_file: holds no recipient/);
  });

  test('bad keep rules', () => {
    const lines = problems(yaml(['keep: { last: -1, daily: 2.5, hourly: "3", forever: 1 }']));
    assert.deepEqual(lines, [
      'serve.yaml:7: job "main": keep.last: -1 is not a whole number of 0 or more',
      'serve.yaml:7: job "main": keep.daily: 2.5 is not a whole number of 0 or more',
      'serve.yaml:7: job "main": keep.hourly: "3" is not a whole number of 0 or more',
      'serve.yaml:7: job "main": keep.forever: unknown rule; keep takes last, hourly, daily, weekly, monthly, yearly',
    ]);
    oneProblem(yaml(['keep: { last: 0, daily: 0 }']), /keep: every rule is 0/);
    oneProblem(yaml(['keep: [1, 2]']), /keep: must be a map/);
  });

  test('bad compression; unknown keys at every level are errors, named', () => {
    oneProblem(yaml(['compress: lz4']), /^serve\.yaml:7: job "main": compress: "lz4" is not one of zstd, gzip, none$/);
    oneProblem(yaml(['tz: UTC']), /^serve\.yaml:7: job "main": tz: unknown setting; a job takes .*timezone/);
    oneProblem(yaml([], ['listn: 1.2.3.4:1']), /^serve\.yaml:2: listn: unknown setting/);
    oneProblem(yaml([], ['ha: { election: /x, lease: 5 }']), /^serve\.yaml:2: ha\.lease: unknown setting; ha takes election, job, ttl/);
    oneProblem(yaml([], ['ha: { }']), /ha\.election: must be the etcd key/);
  });

  test('ha: job names a job of the file, ttl is a whole number of seconds from 2 to 300', () => {
    const second = ['  - name: other', '    etcd: { url: "http://127.0.0.1:2380" }', '    to: ./store/other', '    schedule: "0 * * * *"'];
    const two = (ha: string) => yaml([], [ha]) + second.join('\n') + '\n';
    assert.deepEqual(load(two('ha: { election: /e, job: other, ttl: 3 }')).ha, { election: '/e', job: 'other', ttl: 3 });
    assert.deepEqual(load(two('ha: { election: /e }')).ha, { election: '/e', job: 'main', ttl: 10 });
    assert.deepEqual(load(yaml([], ['ha: { election: /e, ttl: 300 }'])).ha, { election: '/e', job: 'main', ttl: 300 });
    oneProblem(two('ha: { election: /e, job: mian }'), /^serve\.yaml:2: ha\.job: "mian" is not a job of this file; give one of main, other$/);
    oneProblem(yaml([], ['ha: { election: /e, job: 7 }']), /^serve\.yaml:2: ha\.job: must be the name of the job/);
    for (const ttl of ['1', '301', '2.5', '"10"', '0', '-4']) {
      oneProblem(yaml([], [`ha: { election: /e, ttl: ${ttl} }`]), /^serve\.yaml:2: ha\.ttl: .* is not a whole number of seconds from 2 to 300 \(default 10\)$/);
    }
    // A job with problems of its own is still a job ha may name: only its own problem is reported.
    const lines = problems(two('ha: { election: /e, job: other }').replace('schedule: "0 * * * *"', 'schedule: "nope"'));
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(lines[0]!, /job "other": schedule/);
  });

  test('listen: host:port with a port in range; no token off loopback is a warning; only one token source', () => {
    oneProblem(yaml().replace('127.0.0.1:9469', '127.0.0.1:0'), /^serve\.yaml:1: listen: "127\.0\.0\.1:0" has port 0, outside 1-65535/);
    oneProblem(yaml().replace('127.0.0.1:9469', 'localhost'), /listen: "localhost" is not host:port/);
    const open = load(yaml().replace('127.0.0.1:9469', '0.0.0.0:9469'));
    assert.equal(open.settings.warnings.length, 1);
    assert.match(open.settings.warnings[0]!, /0\.0\.0\.0:9469 is not a loopback address and no token is set.*refused except from loopback/);
    assert.equal(load(yaml().replace('127.0.0.1:9469', '"[::1]:9469"')).listen.loopback, true);
    oneProblem(yaml([], [`token: ${TOKEN}`, 'token_env: API_TOKEN']), /token_env: give only one of token, token_env and token_file/);
    const missing = oneProblem(yaml([], ['token_env: API_TOKEN']), /^serve\.yaml:2: token_env: environment variable API_TOKEN is not set$/);
    assert.ok(missing);
  });

  test('all errors are collected, in file order, across jobs and the top level', () => {
    const text = [
      'listen: nowhere',
      'jobs:',
      '  - name: main',
      '    etcd: { url: "http://127.0.0.1:2379", auth: rbac, username: u, password_env: ETCD_PW }',
      '    to: ftp://x',
      '    schedule: "nope"',
      '  - name: second',
      '    etcd: 7',
      '    schedule: "@daily"',
      '    compress: brotli',
    ].join('\n');
    const lines = problems(text, {});
    assert.deepEqual(
      lines.map((l) => /^serve\.yaml:\d+: (?:job "[^"]+": )?[a-z_.[\]0-9]+/.exec(l)?.[0]),
      [
        'serve.yaml:1: listen',
        'serve.yaml:4: job "main": etcd.password_env',
        'serve.yaml:5: job "main": to',
        'serve.yaml:6: job "main": schedule',
        'serve.yaml:7: job "second": to',
        'serve.yaml:8: job "second": etcd',
        'serve.yaml:10: job "second": compress',
      ],
      lines.join('\n'),
    );
  });

  test('YAML syntax errors carry their line; a file that is not a map is refused', () => {
    const lines = problems('listen: 127.0.0.1:9469\njobs:\n  - name: [main\n');
    assert.ok(lines.length >= 1);
    assert.match(lines[0]!, /^serve\.yaml:\d+: not valid YAML: /);
    assert.deepEqual(problems('- a\n- b\n'), ['serve.yaml:1: the file must be a YAML map with listen, token_file or token_env, and jobs']);
    assert.match(problems('').join('\n'), /must be a YAML map/);
  });

  test('no secret in any error text, even with many problems', () => {
    const text = [
      `token: "${TOKEN} x"`,
      'listen: 0.0.0.0:1',
      'jobs:',
      '  - name: main',
      `    etcd: { url: "https://127.0.0.1:2379", auth: Both, username: u, password: ${PASSWORD}, client_key: "not a key ${PASSWORD}" }`,
      '    to: ./s',
      '    schedule: "@daily"',
    ].join('\n');
    let message = '';
    try {
      load(text);
    } catch (err) {
      message = `${(err as Error).message}\n${(err as ServiceConfigError).hint}\n${inspect(err)}`;
    }
    assert.match(message, /token: the token contains white space \(value hidden\)/);
    assert.match(message, /etcd\.client_key/);
    assert.ok(!message.includes(PASSWORD) && !message.includes(TOKEN), message);
  });
});
