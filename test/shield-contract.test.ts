// SHIELD's plugin contract (info, validate, backup, restore, exit codes), checked through the real CLI
// against real etcd processes on loopback.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeCerts } from './certs';
import { assertNoCrash, binPath, childEnv, describeRun, expectCode, fixturesDir, repoRoot, reportLines, runCli, startCli, type CliResult } from './cli';
import { ExitCode } from '../src/errors';
import { freePort, startEtcd, type EtcdCluster } from './harness';

const MAGIC = '#etcd-shield-archive v1\n';
const FIELD_NAMES = ['url', 'timeout', 'auth', 'username', 'password', 'client_cert', 'client_key', 'ca_cert', 'overwrite', 'prefix'];
const UI_TYPES = ['string', 'password', 'bool', 'enum', 'port', 'abspath', 'pem-x509', 'pem-rsa-pk', 'text'];

interface InfoField {
  mode: string;
  name: string;
  type: string;
  title?: string;
  help?: string;
  example?: unknown;
  default?: unknown;
  required?: boolean;
  enum?: unknown;
  [k: string]: unknown;
}
interface Info {
  name: string;
  author: string;
  version: string;
  features: Record<string, unknown>;
  fields: InfoField[];
}



/** Field names as info lists them (the original ten plus any added since); set by the top-level before(). */
let infoFields: string[] = [];

/**
 * validate prints the field lines first, then (when it connects) the connection checks,
 * whose names may repeat a field's (e.g. "auth"). Split there.
 */
function sections(r: CliResult): { fields: ReturnType<typeof reportLines>; probes: ReturnType<typeof reportLines> } {
  const lines = reportLines(r);
  let cut = lines.findIndex((l) => !infoFields.includes(l.name));
  if (cut < 0) cut = lines.length;
  return { fields: lines.slice(0, cut), probes: lines.slice(cut) };
}

/** The one line about a field (or, for a non-field name, about a connection check). */
function lineFor(r: CliResult, name: string): { mark: string; text: string } {
  const { fields, probes } = sections(r);
  const found = (infoFields.includes(name) ? fields : probes).filter((l) => l.name === name);
  assert.equal(found.length, 1, `expected exactly one "${name}" line\n${describeRun(r)}`);
  return found[0]!;
}

before(async () => {
  const r = await runCli(['info']);
  assert.equal(r.code, 0, describeRun(r));
  infoFields = (JSON.parse(r.stdout.toString('utf8')) as { fields: { name: string }[] }).fields.map((f) => f.name).sort();
});

const ep = (url: string, extra: Record<string, unknown> = {}) => JSON.stringify({ url, ...extra });

describe('info, version, help and usage', () => {
  let info: Info;
  let infoRun: CliResult;

  before(async () => {
    infoRun = await runCli(['info']);
    expectCode(infoRun, 0, 'info');
    info = JSON.parse(infoRun.stdout.toString('utf8')) as Info;
  });

  test('info prints exactly one JSON object on stdout and exits 0', () => {
    const text = infoRun.stdout.toString('utf8');
    assert.equal(typeof info, 'object');
    assert.ok(!Array.isArray(info));
    // Nothing but the JSON (one trailing newline allowed).
    assert.deepEqual(JSON.parse(text.trim()), info);
    assert.equal(infoRun.stderr, '');
    for (const k of ['name', 'author', 'version'] as const) {
      assert.equal(typeof info[k], 'string', k);
      assert.notEqual(info[k], '', k);
    }
  });

  test('features are the strings "yes"/"no": a target plugin, not a store', () => {
    assert.deepEqual(info.features, { target: 'yes', store: 'no' });
  });

  test("every field of the original plugin's info is present with the same name, type and mode", () => {
    const go = JSON.parse(fs.readFileSync(path.join(fixturesDir, 'shield-go-info.json'), 'utf8')) as Info;
    assert.ok(go.fields.length >= 10);
    for (const g of go.fields) {
      const ours = info.fields.filter((f) => f.name === g.name);
      assert.equal(ours.length, 1, `field ${g.name} appears ${ours.length} times`);
      const f = ours[0]!;
      assert.equal(f.type, g.type, `type of ${g.name}`);
      assert.equal(f.mode, g.mode, `mode of ${g.name}`);
      if (g.enum) assert.deepEqual(f.enum, g.enum, `enum values of ${g.name}`);
      if (g.required) assert.equal(f.required, true, `${g.name} must stay required`);
      if (g.default !== undefined) assert.equal(f.default, g.default, `default of ${g.name}`);
    }
    for (const name of FIELD_NAMES) assert.ok(info.fields.some((f) => f.name === name), name);
    assert.equal(new Set(info.fields.map((f) => f.name)).size, info.fields.length, 'field names are unique');
  });

  test('the metadata passes SHIELD_PEDANTIC_INFO linting', async () => {
    const r = await runCli(['info'], { env: { SHIELD_PEDANTIC_INFO: '1' } });
    expectCode(r, 0, 'info with SHIELD_PEDANTIC_INFO');
    const pedantic = JSON.parse(r.stdout.toString('utf8')) as Info;
    assert.ok(pedantic.fields.length > 0);
    for (const f of pedantic.fields) {
      const where = `field ${JSON.stringify(f.name)}`;
      for (const k of ['name', 'type', 'title', 'help'] as const) {
        assert.equal(typeof f[k], 'string', `${where}: ${k} must be a string`);
        assert.notEqual((f[k] as string).trim(), '', `${where}: ${k} must not be empty`);
      }
      assert.ok(f.help!.endsWith('.'), `${where}: help must end with "." (${JSON.stringify(f.help)})`);
      assert.ok(['target', 'store', 'both'].includes(f.mode), `${where}: mode ${f.mode}`);
      assert.ok(UI_TYPES.includes(f.type), `${where}: type ${f.type} is not one SHIELD knows`);
      if (f.type === 'enum') {
        assert.ok(Array.isArray(f.enum) && f.enum.length > 0, `${where}: an enum field lists its values`);
        for (const v of f.enum as unknown[]) assert.equal(typeof v, 'string', `${where}: enum values are strings`);
      } else {
        assert.equal('enum' in f, false, `${where}: only enum fields carry "enum"`);
      }
      for (const k of ['example', 'default'] as const) {
        if (k in f) {
          assert.equal(typeof f[k], 'string', `${where}: ${k} must be a string`);
          assert.notEqual(f[k], '', `${where}: an empty ${k} must be omitted`);
        }
      }
      if ('required' in f) assert.equal(f.required, true, `${where}: "required" is omitted unless true`);
    }
  });

  test('-v and --version print "NAME vVERSION - AUTHOR" matching info', async () => {
    for (const flag of ['-v', '--version']) {
      const r = await runCli([flag]);
      expectCode(r, 0, flag);
      assert.equal(r.stdout.toString('utf8').trim(), `${info.name} v${info.version} - ${info.author}`);
    }
    const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    assert.equal(info.version, pkg.version);
  });

  test('-h and --help print usage and exit 0', async () => {
    for (const args of [['-h'], ['--help'], ['backup', '--help'], ['restore', '-h']]) {
      const r = await runCli(args);
      expectCode(r, 0, args.join(' '));
      assert.match(r.stdout.toString('utf8'), /Usage:/);
    }
  });

  test('help, version and info into a reader that went away (| head): a message and a failure exit, no stack trace', async () => {
    for (const args of [['--help'], ['--version'], ['backup', '--help'], ['info'], []]) {
      const run = startCli(args);
      // Our end of the pipe closes before node has even started, so the first write fails with EPIPE.
      run.child.stdout.destroy();
      const r = await run.exit;
      const what = `etcd-shield ${args.join(' ')} with stdout closed`;
      // The message comes only from the EPIPE handler: it proves the write really failed.
      assert.match(r.stderr, /standard output was closed before the report was complete/, `${what}\n${describeRun(r)}`);
      expectCode(r, ExitCode.failure, what);
      assertNoCrash(r, what);
    }
  });

  test('info into a full, non-blocking pipe: the report waits for the reader and arrives whole', () => {
    // perl (Debian's perl-base, always present) makes the pipe Node cannot: its write end
    // non-blocking and already full when the CLI starts, so the report's first write gets EAGAIN.
    const script = String.raw`
      use strict; use Fcntl; use POSIX ();
      pipe(my $r, my $w) or die "pipe: $!";
      my $flags = fcntl($w, F_GETFL, 0); fcntl($w, F_SETFL, $flags | O_NONBLOCK) or die "fcntl: $!";
      my $filled = 0;
      while (1) { my $n = syswrite($w, 'x' x 4096); last unless defined $n; $filled += $n; }
      $!{EAGAIN} or die "filling the pipe: $!";
      my $pid = fork() // die "fork: $!";
      if ($pid == 0) { close $r; open(STDOUT, '>&', $w) or die; exec(@ARGV) or die "exec: $!"; }
      close $w;
      # Wait until the CLI sits idle (no CPU for half a second) with the pipe still full: it has met EAGAIN.
      my ($last, $idle) = ('', 0);
      for (1 .. 80) {
        open(my $st, '<', "/proc/$pid/stat") or die "CLI exited before reading: $!";
        my @f = split ' ', (<$st> =~ s/^.*\) //r); close $st;
        my $cpu = "$f[11] $f[12]";
        $idle = $cpu eq $last ? $idle + 1 : 0; $last = $cpu;
        last if $idle >= 2;
        select(undef, undef, undef, 0.25);
      }
      my $alive = waitpid($pid, POSIX::WNOHANG()) == 0 ? 1 : 0;
      local $/; my $all = <$r>; waitpid($pid, 0);
      print STDOUT "idle=$idle alive=$alive exit=", $? >> 8, " filler=", (substr($all, 0, $filled) eq ("x" x $filled) ? 1 : 0), "\n", substr($all, $filled);
    `;
    const r = spawnSync('perl', ['-e', script, process.execPath, binPath, 'info'], { encoding: 'utf8', env: childEnv(), timeout: 60_000 });
    assert.equal(r.status, 0, `perl: ${r.stderr}`);
    const [status, ...report] = r.stdout.split('\n');
    // Idle and alive with the pipe full: the CLI's write really met EAGAIN and was waiting.
    assert.equal(status, 'idle=2 alive=1 exit=0 filler=1', r.stdout.slice(0, 400) + r.stderr);
    const info = JSON.parse(report.join('\n')) as Info;
    assert.equal(info.name, 'etcd-shield');
    assert.ok(info.fields.length >= FIELD_NAMES.length);
  });

  test('usage errors exit 1: unknown option, unknown command, extra argument, no command', async () => {
    const cases = [['--bogus'], ['backup', '--no-such-flag'], ['info', 'extra'], ['frobnicate'], []];
    const runs = await Promise.all(cases.map((a) => runCli(a)));
    runs.forEach((r, i) => expectCode(r, 1, `etcd-shield ${cases[i]!.join(' ')}`));
  });

  test('store, retrieve and purge are unsupported actions (exit 2)', async () => {
    const cases = [
      ['store', '-e', '{}'],
      ['retrieve', '-k', 'some-key', '-e', '{}'],
      ['purge', '-k', 'some-key', '-e', '{}'],
    ];
    const runs = await Promise.all(cases.map((a) => runCli(a)));
    runs.forEach((r, i) => {
      expectCode(r, 2, cases[i]![0]!);
      assert.equal(r.stdout.length, 0);
    });
  });
});

describe('the -e endpoint JSON: parse errors and types (no etcd needed)', () => {
  const url = 'http://127.0.0.1:9'; // never contacted: these runs fail before connecting

  test('-e that is not valid JSON exits 10', async () => {
    const cases = ['{', 'nope', '', "{'url':'x'}", '{"url":"x",}'].flatMap((bad) => ['backup', 'restore', 'validate'].map((cmd) => [cmd, '-e', bad]));
    const runs = await Promise.all(cases.map((args) => runCli(args)));
    runs.forEach((r, i) => expectCode(r, 10, cases[i]!.join(' ')));
  });

  test('-e that is JSON but not an object (array, null, string, number) exits 10', async () => {
    const cases = ['[]', '["url"]', `[{"url":"${url}"}]`, 'null', '"http://x"', '42', 'true'];
    const runs = await Promise.all(cases.map((bad) => runCli(['backup', '--endpoint', bad])));
    runs.forEach((r, i) => expectCode(r, 10, `backup --endpoint ${cases[i]}`));
  });

  test('a missing url exits 12 for backup and restore; validate reports ✗ url and fails', async () => {
    const cases = ['{}', '{"url":""}', '{"url":null}', '{"prefix":"/x"}'].flatMap((json) => ['backup', 'restore'].map((cmd) => [cmd, '-e', json]));
    const runs = await Promise.all(cases.map((args) => runCli(args)));
    runs.forEach((r, i) => {
      expectCode(r, 12, cases[i]!.join(' '));
      assert.match(r.stderr, /url/);
      assert.equal(r.stdout.length, 0);
    });
    const v = await runCli(['validate', '-e', '{}']);
    assert.notEqual(v.code, 0, describeRun(v));
    assert.equal(lineFor(v, 'url').mark, '✗');
  });

  test('a field of the wrong type exits 13 (url as a number, overwrite "maybe")', async () => {
    const cases: [string, string][] = [
      ['backup', JSON.stringify({ url: 2379 })],
      ['restore', JSON.stringify({ url: 2379 })],
      ['backup', JSON.stringify({ url: [url] })],
      ['backup', JSON.stringify({ url: { host: 'x' } })],
      ['restore', JSON.stringify({ url, overwrite: 'maybe' })],
      ['restore', JSON.stringify({ url, overwrite: 2 })],
      ['backup', JSON.stringify({ url, prefix: 7 })],
      ['backup', JSON.stringify({ url, username: true })],
    ];
    const runs = await Promise.all(cases.map(([cmd, json]) => runCli([cmd, '-e', json])));
    runs.forEach((r, i) => expectCode(r, 13, `${cases[i]![0]} -e ${cases[i]![1]}`));
    const v = await runCli(['validate', '--offline', '-e', JSON.stringify({ url: 2379, overwrite: 'maybe' })]);
    assert.notEqual(v.code, 0, describeRun(v));
    assert.equal(lineFor(v, 'url').mark, '✗');
    assert.equal(lineFor(v, 'overwrite').mark, '✗');
  });

  test('booleans follow SHIELD rules: yes, 1, on, true are true; off, 0, no, "" are false', async () => {
    const truthy: unknown[] = [true, 1, 'yes', 'YES', 'y', 't', 'true', 'True', 'on', '1'];
    const falsy: unknown[] = [false, 0, 'off', 'OFF', 'no', 'n', 'f', 'false', '', '0'];
    const check = async (value: unknown, on: boolean) => {
      const r = await runCli(['validate', '--offline', '-e', JSON.stringify({ url, overwrite: value })]);
      expectCode(r, 0, `overwrite ${JSON.stringify(value)}`);
      const l = lineFor(r, 'overwrite');
      assert.equal(l.mark, '✓');
      assert.match(l.text, on ? /^on\b/ : /^off\b/, `overwrite ${JSON.stringify(value)} should be ${on ? 'on' : 'off'}`);
    };
    await Promise.all([...truthy.map((v) => check(v, true)), ...falsy.map((v) => check(v, false))]);
  });

  test('timeout is accepted as a number and as a string', async () => {
    for (const t of [5, '5', 0.5, '2.5']) {
      const r = await runCli(['validate', '--offline', '-e', JSON.stringify({ url, timeout: t })]);
      expectCode(r, 0, `timeout ${JSON.stringify(t)}`);
      const l = lineFor(r, 'timeout');
      assert.equal(l.mark, '✓');
      assert.match(l.text, new RegExp(`^${String(Number(t)).replace('.', '\\.')} s\\b`));
    }
    for (const t of ['soon', '-1', '0']) {
      const r = await runCli(['validate', '--offline', '-e', JSON.stringify({ url, timeout: t })]);
      assert.notEqual(r.code, 0, `timeout ${t}\n${describeRun(r)}`);
      assert.equal(lineFor(r, 'timeout').mark, '✗');
    }
  });

  test('an unknown auth value fails validation (exit 4) with a ✗ auth line', async () => {
    for (const auth of ['Kerberos', 'role-based', 'yes']) {
      const r = await runCli(['validate', '-e', JSON.stringify({ url, auth })]);
      expectCode(r, 4, `auth ${auth}`);
      assert.equal(lineFor(r, 'auth').mark, '✗');
      assert.match(r.stderr, /auth/);
    }
    // backup refuses it too, before connecting.
    const b = await runCli(['backup', '-e', JSON.stringify({ url, auth: 'Kerberos' })]);
    expectCode(b, 4, 'backup with an unknown auth');
    assert.equal(b.stdout.length, 0);
  });

  test('validate prints exactly one ✓/✗ line per field on stdout', async () => {
    const r = await runCli(['validate', '--offline', '-e', JSON.stringify({ url })]);
    expectCode(r, 0, 'validate --offline');
    const lines = reportLines(r);
    assert.deepEqual(lines.map((l) => l.name).sort(), infoFields);
    assert.ok(lines.every((l) => l.mark === '✓'), describeRun(r));
    // A failing run still reports every field, once each.
    const bad = await runCli(['validate', '--offline', '-e', JSON.stringify({ url: 'ftp://x:1', auth: 'Both' })]);
    expectCode(bad, 4, 'validate of a bad configuration');
    const badLines = reportLines(bad);
    assert.deepEqual(badLines.map((l) => l.name).sort(), infoFields, describeRun(bad));
    for (const f of ['url', 'username', 'password', 'client_cert', 'client_key']) assert.equal(lineFor(bad, f).mark, '✗', f);
  });

  test('a missing client_cert with certificate auth fails validation (exit 4)', async () => {
    const r = await runCli(['validate', '--offline', '-e', JSON.stringify({ url: 'https://127.0.0.1:9', auth: 'Certificate-Based Authentication' })]);
    expectCode(r, 4, 'cert auth without a certificate');
    assert.equal(lineFor(r, 'client_cert').mark, '✗');
    assert.equal(lineFor(r, 'client_key').mark, '✗');
  });

  test('validate never prints the password or private key contents', async () => {
    const password = 'Sup3r-S3cret-Pw-4711';
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-shield-contract-'));
    try {
      const certs = await makeCerts(dir, { keyType: 'ec' });
      const keyBody = certs.clientKeyPem
        .split('\n')
        .filter((l) => l && !l.startsWith('-----'))
        .join('');
      assert.ok(keyBody.length > 40);
      const secretLines = certs.clientKeyPem.split('\n').filter((l) => l.length >= 16 && !l.startsWith('-----'));
      const garbageKey = '-----BEGIN PRIVATE KEY-----\nTOPSECRETKEYMATERIALxyz0123\n-----END PRIVATE KEY-----\n';
      const configs: Record<string, unknown>[] = [
        // All valid: RBAC + certificate.
        { url: 'https://127.0.0.1:9', auth: 'Both', username: 'backup', password, client_cert: certs.clientCertPem, client_key: certs.clientKeyPem, ca_cert: certs.caCertPem },
        // Fails elsewhere (auth), password and key still set.
        { url: 'https://127.0.0.1:9', auth: 'Kerberos', username: 'backup', password, client_key: certs.clientKeyPem },
        // The key itself is bad.
        { url: 'https://127.0.0.1:9', auth: 'Both', username: 'backup', password, client_cert: certs.clientCertPem, client_key: garbageKey },
        // The key belongs to another certificate.
        { url: 'https://127.0.0.1:9', auth: 'Both', username: 'backup', password, client_cert: certs.caCertPem, client_key: certs.clientKeyPem },
      ];
      for (const cfg of configs) {
        const r = await runCli(['validate', '--offline', '-e', JSON.stringify(cfg)]);
        const all = r.stdout.toString('utf8') + r.stderr;
        assert.ok(!all.includes(password), `password shown in clear (auth ${cfg.auth})\n${describeRun(r)}`);
        assert.ok(!all.includes('TOPSECRETKEYMATERIAL'), `key contents shown\n${describeRun(r)}`);
        for (const l of secretLines) assert.ok(!all.includes(l), `private key line shown in clear\n${describeRun(r)}`);
        assert.ok(!all.includes(keyBody.slice(0, 24)), 'private key contents shown');
        assert.ok(r.code === 0 || r.code === 4, describeRun(r));
        // The password field is reported, but redacted.
        assert.equal(lineFor(r, 'password').mark, '✓');
      }
      const ok = await runCli(['validate', '--offline', '-e', JSON.stringify(configs[0])]);
      expectCode(ok, 0, 'valid RBAC + certificate configuration');
      assert.equal(lineFor(ok, 'client_key').mark, '✓');
      const garbage = await runCli(['validate', '--offline', '-e', JSON.stringify(configs[2])]);
      expectCode(garbage, 4, 'unparseable key');
      assert.equal(lineFor(garbage, 'client_key').mark, '✗');
      const mismatch = await runCli(['validate', '--offline', '-e', JSON.stringify(configs[3])]);
      expectCode(mismatch, 4, 'key of another certificate');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a password of the wrong type is not echoed in the error', async () => {
    const secret = 98765432109;
    for (const args of [
      ['validate', '--offline', '-e', JSON.stringify({ url, auth: 'Role-Based Authentication', username: 'u', password: secret })],
      ['backup', '-e', JSON.stringify({ url, auth: 'Role-Based Authentication', username: 'u', password: secret })],
    ]) {
      const r = await runCli(args);
      expectCode(r, args[0] === 'backup' ? 13 : 4, args[0]!);
      assert.ok(!(r.stdout.toString('utf8') + r.stderr).includes(String(secret)), `password echoed in clear by ${args[0]}\n${describeRun(r)}`);
    }
  });

  test('field flags together with -e are a usage error (exit 1)', async () => {
    const json = JSON.stringify({ url });
    const cases = [
      ['backup', '-e', json, '--prefix', '/x'],
      ['restore', '-e', json, '--overwrite'],
      ['validate', '-e', json, '--endpoints', url],
      ['backup', '--user', 'root:pw', '-e', json],
    ];
    for (const args of cases) {
      const r = await runCli(args);
      expectCode(r, 1, args.join(' '));
      assert.equal(r.stdout.length, 0);
    }
  });
});

describe('against a live etcd', () => {
  let etcd: EtcdCluster;

  before(async () => {
    etcd = await startEtcd();
    for (let i = 0; i < 20; i++) await etcd.etcdctl(['put', `/contract/k${String(i).padStart(2, '0')}`, `v${i}`], { check: true });
    await etcd.etcdctl(['put', '/other', 'x'], { check: true });
  });
  after(async () => {
    await etcd?.stop();
  });

  test('validate shows endpoint, members, read and write lines and exits 0', async () => {
    const r = await runCli(['validate', '-e', ep(etcd.url, { prefix: '/contract/' })]);
    expectCode(r, 0, 'validate against a live etcd');
    for (const name of ['endpoint', 'members', 'read', 'write']) assert.equal(lineFor(r, name).mark, '✓', name);
    assert.match(lineFor(r, 'endpoint').text, new RegExp(etcd.url.replace(/[/.]/g, '\\$&')));
    assert.match(lineFor(r, 'read').text, /\b20 keys\b/);
    const { fields, probes } = sections(r);
    assert.deepEqual(fields.map((l) => l.name).sort(), infoFields, 'one line per field, before the connection checks');
    assert.ok(probes.length >= 4);
    assert.ok(reportLines(r).every((l) => l.mark === '✓'), describeRun(r));
    // The same through flags.
    const flags = await runCli(['validate', '--endpoints', etcd.url]);
    expectCode(flags, 0, 'validate --endpoints');
  });

  test('validate against a closed port fails and names the endpoint', async () => {
    const port = await freePort(); // nothing listens there
    const url = `http://127.0.0.1:${port}`;
    const r = await runCli(['validate', '-e', ep(url, { timeout: '1' })]);
    expectCode(r, 4, 'validate against a closed port');
    const l = lineFor(r, 'endpoint');
    assert.equal(l.mark, '✗');
    assert.ok(l.text.includes(`127.0.0.1:${port}`), l.text);
    assert.match(r.stderr, /endpoint/);
    // backup fails the same way, with nothing on stdout, and a stack trace only when debugging.
    const [b, debug] = await Promise.all([
      runCli(['backup', '-e', ep(url, { timeout: 1 })]),
      runCli(['backup', '-e', ep(url, { timeout: 1 })], { env: { DEBUG: 'true' } }),
    ]);
    for (const run of [b, debug]) {
      expectCode(run, 4, 'backup against a closed port');
      assert.equal(run.stdout.length, 0);
      assert.ok(run.stderr.includes(`127.0.0.1:${port}`), run.stderr);
    }
    const stackLine = /^\s+at .+\(.+:\d+:\d+\)$/m;
    assert.doesNotMatch(b.stderr, stackLine, 'no stack trace without --debug');
    assert.match(debug.stderr, stackLine, 'DEBUG=true shows where it failed');
  });

  test('backup writes only the archive on stdout; the summary goes to stderr', async () => {
    for (const extra of [[], ['-D']]) {
      const r = await runCli(['backup', ...extra, '-e', ep(etcd.url, { prefix: '/contract/' })]);
      expectCode(r, 0, `backup ${extra.join(' ')}`);
      assert.equal(r.stdout.subarray(0, MAGIC.length).toString('latin1'), MAGIC);
      assert.ok(!r.stdout.includes('backup done'), 'the summary leaked into the archive');
      assert.match(r.stderr, /backup done/);
      const v = await runCli(['verify', '--json'], { input: r.stdout });
      expectCode(v, 0, 'verify of the backup stdout');
      const s = JSON.parse(v.stdout.toString('utf8')) as { keys: number; prefix: string };
      assert.equal(s.keys, 20);
      assert.equal(s.prefix, '/contract/');
    }
    // The legacy format too: every stdout line is an archive line.
    const legacy = await runCli(['backup', '--format', 'legacy', '--endpoints', etcd.url, '--prefix', '/contract/']);
    expectCode(legacy, 0, 'legacy backup');
    const lines = legacy.stdout.toString('latin1').split('\n');
    assert.equal(lines.pop(), '');
    assert.equal(lines.length, 20);
    for (const l of lines) assert.match(l, /^[A-Za-z0-9+/]+=* : [A-Za-z0-9+/]*=*$/);
  });

  test('timeout as a number or a string works for a real backup; unknown keys only warn', async () => {
    for (const timeout of [5, '5', '2.5']) {
      const r = await runCli(['backup', '-e', ep(etcd.url, { timeout, prefix: '/contract/' })]);
      expectCode(r, 0, `backup with timeout ${JSON.stringify(timeout)}`);
    }
    const r = await runCli(['backup', '-e', ep(etcd.url, { prefix: '/contract/', some_future_field: 'x' })]);
    expectCode(r, 0, 'backup with an unknown field');
    assert.match(r.stderr, /some_future_field/);
  });

  test('SHIELD booleans reach restore: overwrite "yes" deletes, "off" and "" keep', async () => {
    const b = await runCli(['backup', '-e', ep(etcd.url, { prefix: '/contract/' })]);
    expectCode(b, 0, 'backup');
    await etcd.etcdctl(['put', '/contract/zz-extra', 'x'], { check: true });
    try {
      for (const [overwrite, on] of [['yes', true], [1, true], ['off', false], ['', false]] as const) {
        const r = await runCli(['restore', '--dry-run', '-e', ep(etcd.url, { prefix: '/contract/', overwrite })], { input: b.stdout });
        expectCode(r, 0, `restore --dry-run with overwrite ${JSON.stringify(overwrite)}`);
        const out = r.stdout.toString('utf8');
        if (on) assert.match(out, /delete\s+1 keys/, out);
        else assert.match(out, /leave\s+1 keys/, out);
      }
    } finally {
      await etcd.etcdctl(['del', '/contract/zz-extra'], { check: true });
    }
  });

  test('etcdctl environment variables: ETCDCTL_ENDPOINTS and ETCDCTL_DIAL_TIMEOUT', async () => {
    const env = { ETCDCTL_ENDPOINTS: etcd.url, ETCDCTL_DIAL_TIMEOUT: '3s' };
    const v = await runCli(['validate'], { env });
    expectCode(v, 0, 'validate from ETCDCTL_ENDPOINTS');
    assert.equal(lineFor(v, 'timeout').mark, '✓');
    assert.match(lineFor(v, 'timeout').text, /^3 s\b/);
    const b = await runCli(['backup', '--prefix', '/contract/'], { env });
    expectCode(b, 0, 'backup from ETCDCTL_ENDPOINTS');
    assert.equal(b.stdout.subarray(0, MAGIC.length).toString('latin1'), MAGIC);
  });

  test('a flag wins over its etcdctl variable (--url)', async () => {
    const port = await freePort(); // nothing listens there
    const f = await runCli(['backup', '--prefix', '/contract/', '--url', etcd.url], {
      env: { ETCDCTL_ENDPOINTS: `http://127.0.0.1:${port}`, ETCDCTL_DIAL_TIMEOUT: '1s' },
    });
    expectCode(f, 0, '--url over ETCDCTL_ENDPOINTS');
  });

  test('a flag wins over its etcdctl variable (--endpoints, the etcdctl spelling)', async () => {
    const port = await freePort(); // nothing listens there
    const f = await runCli(['backup', '--prefix', '/contract/', '--endpoints', etcd.url], {
      env: { ETCDCTL_ENDPOINTS: `http://127.0.0.1:${port}`, ETCDCTL_DIAL_TIMEOUT: '1s' },
    });
    expectCode(f, 0, '--endpoints over ETCDCTL_ENDPOINTS');
  });
});

describe('against an etcd with role-based authentication', () => {
  let etcd: EtcdCluster;
  const rootPassword = 'r00t:pw';
  const alice = { name: 'alice', password: 'alice-Pw-31337' };
  const bob = { name: 'bob', password: 'bob-Reads-Only-1' };

  before(async () => {
    etcd = await startEtcd({
      rbac: {
        rootPassword,
        users: [
          { name: alice.name, password: alice.password, readwritePrefix: '/alice/' },
          { name: bob.name, password: bob.password, readPrefix: '/alice/' },
        ],
      },
    });
    await etcd.etcdctl(['put', '/alice/a', '1'], { check: true });
    await etcd.etcdctl(['put', '/alice/b', '2'], { check: true });
    await etcd.etcdctl(['put', '/secret/x', '3'], { check: true });
  });
  after(async () => {
    await etcd?.stop();
  });

  const keysIn = async (archive: Buffer): Promise<number> => {
    const v = await runCli(['verify', '--json'], { input: archive });
    expectCode(v, 0, 'verify');
    return (JSON.parse(v.stdout.toString('utf8')) as { keys: number }).keys;
  };

  test('ETCDCTL_USER=name:password works, splitting at the first colon as etcdctl does', async () => {
    const root = await runCli(['backup'], { env: { ETCDCTL_ENDPOINTS: etcd.url, ETCDCTL_USER: `root:${rootPassword}` } });
    expectCode(root, 0, 'backup as root from ETCDCTL_USER');
    assert.equal(await keysIn(root.stdout), 3);
    const a = await runCli(['backup', '--prefix', '/alice/'], { env: { ETCDCTL_ENDPOINTS: etcd.url, ETCDCTL_USER: `${alice.name}:${alice.password}` } });
    expectCode(a, 0, 'backup as alice from ETCDCTL_USER');
    assert.equal(await keysIn(a.stdout), 2);
    const split = await runCli(['backup', '--prefix', '/alice/'], {
      env: { ETCDCTL_ENDPOINTS: etcd.url, ETCDCTL_USER: alice.name, ETCDCTL_PASSWORD: alice.password },
    });
    expectCode(split, 0, 'backup with ETCDCTL_USER and ETCDCTL_PASSWORD');
    assert.equal(await keysIn(split.stdout), 2);
  });

  test('--user on the command line wins over ETCDCTL_USER', async () => {
    const r = await runCli(['backup', '--prefix', '/alice/', '--user', `${alice.name}:${alice.password}`], {
      env: { ETCDCTL_ENDPOINTS: etcd.url, ETCDCTL_USER: 'root:Not-The-Root-Pw' },
    });
    expectCode(r, 0, '--user over ETCDCTL_USER');
    assert.equal(await keysIn(r.stdout), 2);
  });

  test('wrong password, no user, or a prefix the user may not read: exit 4 with a clear message', async () => {
    const wrong = 'Not-The-Pw-8086';
    const w = await runCli(['backup', '--prefix', '/alice/'], { env: { ETCDCTL_ENDPOINTS: etcd.url, ETCDCTL_USER: `alice:${wrong}` } });
    expectCode(w, 4, 'wrong password');
    assert.equal(w.stdout.length, 0);
    assert.match(w.stderr, /alice/);
    assert.ok(!w.stderr.includes(wrong), 'the password is shown in the error');
    const none = await runCli(['backup', '--endpoints', etcd.url]);
    expectCode(none, 4, 'no user against an RBAC cluster');
    const denied = await runCli(['backup', '--prefix', '/secret/'], { env: { ETCDCTL_ENDPOINTS: etcd.url, ETCDCTL_USER: `alice:${alice.password}` } });
    expectCode(denied, 4, 'prefix outside the role');
    assert.match(denied.stderr, /permission denied/);
  });

  test('a read-only user: validate passes with a write warning, backup works, restore is refused and changes nothing', async () => {
    const cfg = { url: etcd.url, auth: 'Role-Based Authentication', username: bob.name, password: bob.password, prefix: '/alice/' };
    const v = await runCli(['validate', '-e', JSON.stringify(cfg)]);
    expectCode(v, 0, 'validate of a read-only user');
    assert.equal(lineFor(v, 'read').mark, '✓');
    assert.equal(lineFor(v, 'write').mark, '!');
    const b = await runCli(['backup', '-e', JSON.stringify(cfg)]);
    expectCode(b, 0, 'backup as a read-only user');
    assert.equal(await keysIn(b.stdout), 2);
    await etcd.etcdctl(['put', '/alice/a', 'changed'], { check: true });
    const before = await etcd.etcdctl(['get', '', '--from-key', '-w', 'json'], { check: true });
    const r = await runCli(['restore', '-e', JSON.stringify({ ...cfg, overwrite: true })], { input: b.stdout });
    expectCode(r, 4, 'restore as a read-only user');
    assert.match(r.stderr, /permission denied/);
    const afterRun = await etcd.etcdctl(['get', '', '--from-key', '-w', 'json'], { check: true });
    const kvs = (out: Buffer) => (JSON.parse(out.toString('utf8')) as { kvs: unknown[] }).kvs;
    assert.deepEqual(kvs(afterRun.stdout), kvs(before.stdout));
    await etcd.etcdctl(['put', '/alice/a', '1'], { check: true });
  });

  test('validate with RBAC through -e: ok on the granted prefix, ✗ read elsewhere', async () => {
    const cfg = { auth: 'Role-Based Authentication', username: alice.name, password: alice.password };
    const ok = await runCli(['validate', '-e', ep(etcd.url, { ...cfg, prefix: '/alice/' })]);
    expectCode(ok, 0, 'validate alice on /alice/');
    assert.equal(lineFor(ok, 'write').mark, '✓');
    assert.ok(!(ok.stdout.toString('utf8') + ok.stderr).includes(alice.password));
    const bad = await runCli(['validate', '-e', ep(etcd.url, { ...cfg, prefix: '/secret/' })]);
    expectCode(bad, 4, 'validate alice on /secret/');
    assert.equal(lineFor(bad, 'read').mark, '✗');
    assert.ok(!(bad.stdout.toString('utf8') + bad.stderr).includes(alice.password));
  });
});
