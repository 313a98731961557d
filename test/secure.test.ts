// Secure etcd through the real CLI: TLS, client certificates, RBAC and both,
// with RSA, EC, PKCS#1, SEC1 and PKCS#8 keys, and one clear message per
// misconfiguration. Real etcd processes on loopback, certificates made by openssl.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLIENT_CN, makeCerts, OPENSSL, type CertSet } from './certs';
import { describeRun, expectCode, reportLines, runCli, type CliResult } from './cli';
import { startEtcd, type EtcdCluster } from './harness';

const CERT = 'Certificate-Based Authentication';
const RBAC = 'Role-Based Authentication';
const BOTH = 'Both';

// Every secret any run of this file was given; the last test checks that no output showed one.
const secrets = new Set<string>();
const outputs: { args: string[]; text: string }[] = [];

function keyBodyLines(pem: string): string[] {
  return pem.split('\n').filter((l) => l.length >= 40 && !l.startsWith('-----'));
}

function secretKey(pem: string): string {
  for (const l of keyBodyLines(pem)) secrets.add(l);
  return pem;
}

async function run(args: string[], opts: { input?: Buffer; env?: Record<string, string> } = {}): Promise<CliResult> {
  const r = await runCli(args, opts);
  outputs.push({ args, text: r.stdout.toString('latin1') + r.stderr });
  return r;
}



function line(r: CliResult, name: string): { mark: string; text: string } {
  const found = reportLines(r, name);
  assert.equal(found.length, 1, `expected one "${name}" line\n${describeRun(r)}`);
  return found[0]!;
}

/** The keys and values under a prefix, read with etcdctl (as root when RBAC is on). */
async function dump(etcd: EtcdCluster, prefix: string): Promise<[string, string][]> {
  const r = await etcd.etcdctl(['get', prefix, '--prefix', '-w', 'json'], { check: true });
  const j = JSON.parse(r.stdout.toString('utf8')) as { kvs?: { key: string; value?: string }[] };
  return (j.kvs ?? []).map((kv) => [Buffer.from(kv.key, 'base64').toString('latin1'), kv.value ?? ''] as [string, string]).sort();
}

async function seed(etcd: EtcdCluster, kvs: Record<string, string | Buffer>): Promise<void> {
  for (const [k, v] of Object.entries(kvs)) await etcd.etcdctl(['put', k], { input: v, check: true });
}

function openssl(args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile(OPENSSL, args, { cwd, timeout: 30_000 }, (err, _o, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve())),
  );
}

/** A proper client certificate, but issued by the CA etcd does not trust. */
async function foreignClientCert(ca: CertSet): Promise<{ cert: string; key: string }> {
  const alg = ca.keyType === 'rsa' ? ['-newkey', 'rsa:2048'] : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
  await openssl(['req', '-config', 'openssl.cnf', '-new', ...alg, '-nodes', '-keyout', 'foreign.key', '-subj', '/CN=foreign-client', '-out', 'foreign.csr'], ca.dir);
  await openssl(
    ['x509', '-req', '-in', 'foreign.csr', '-CA', 'other-ca.crt', '-CAkey', 'other-ca.key', '-set_serial', '0x1234', '-days', '30',
      '-extfile', 'openssl.cnf', '-extensions', 'client_ext', '-out', 'foreign.crt'],
    ca.dir,
  );
  return { cert: fs.readFileSync(path.join(ca.dir, 'foreign.crt'), 'utf8'), key: secretKey(fs.readFileSync(path.join(ca.dir, 'foreign.key'), 'utf8')) };
}

const toPkcs8 = (pem: string) => createPrivateKey(pem).export({ type: 'pkcs8', format: 'pem' }).toString();
const toPkcs1 = (pem: string) => createPrivateKey(pem).export({ type: 'pkcs1', format: 'pem' }).toString();

let tmp: string;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-shield-secure-'));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function write(name: string, text: string): string {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, text, { mode: 0o600 });
  return p;
}

const APP = { '/app/a': 'alpha', '/app/b': Buffer.from([0, 1, 2, 0xff, 0xfe]), '/app/c/deep': 'x'.repeat(3000), '/apple': 'not in /app/' };

describe('client certificates: TLS with --client-cert-auth, EC keys', () => {
  let etcd: EtcdCluster;
  let ca: CertSet;
  let base: Record<string, unknown>;

  before(async () => {
    etcd = await startEtcd({ tls: true, clientCertAuth: true, keyType: 'ec' });
    ca = etcd.ca!;
    secretKey(ca.clientKeyPem);
    await seed(etcd, APP);
    base = { url: etcd.url, auth: CERT, client_cert: ca.clientCertPem, client_key: ca.clientKeyPem, ca_cert: ca.caCertPem, prefix: '/app/' };
  });
  after(async () => {
    await etcd?.stop();
  });

  test('Certificate-Based: validate, backup and restore with PEM fields (SHIELD, SEC1 key)', async () => {
    const v = await run(['validate', '-e', JSON.stringify(base)]);
    expectCode(v, 0, 'validate');
    assert.match(line(v, 'client_key').text, /EC prime256v1 private key, SEC1/);
    assert.match(line(v, 'auth').text, /Certificate-Based/);
    assert.match(line(v, 'identity').text, new RegExp(`client certificate CN=${CLIENT_CN} accepted, server certificate verified`));
    assert.match(line(v, 'endpoint').text, /healthy/);

    const before = await dump(etcd, '/app/');
    const b = await run(['backup', '-e', JSON.stringify(base)]);
    expectCode(b, 0, 'backup');
    await etcd.etcdctl(['del', '/app/', '--prefix'], { check: true });
    await seed(etcd, { '/app/extra': 'remove me' });
    const r = await run(['restore', '-e', JSON.stringify({ ...base, overwrite: true })], { input: b.stdout });
    expectCode(r, 0, 'restore');
    assert.deepEqual(await dump(etcd, '/app/'), before);
    assert.deepEqual(await dump(etcd, '/apple'), [['/apple', Buffer.from('not in /app/').toString('base64')]]);
  });

  test('Certificate-Based from the command line: --cacert, --cert, --key files, PKCS#8 EC key', async () => {
    const key = write('client-ec-pkcs8.key', secretKey(toPkcs8(ca.clientKeyPem)));
    assert.match(fs.readFileSync(key, 'utf8'), /BEGIN PRIVATE KEY/);
    const out = path.join(tmp, 'cert.archive');
    const files = ['--url', etcd.url, '--cacert', ca.caCert, '--cert', ca.clientCert, '--key', key];
    const v = await run(['validate', ...files, '--prefix', '/app/']);
    expectCode(v, 0, 'validate');
    assert.match(line(v, 'client_key').text, /EC prime256v1 private key, PKCS#8/);
    expectCode(await run(['backup', ...files, '--prefix', '/app/', '--out', out]), 0, 'backup --out');
    await etcd.etcdctl(['put', '/app/a', 'changed'], { check: true });
    expectCode(await run(['restore', ...files, '--prefix', '/app/', '--in', out]), 0, 'restore --in');
    assert.deepEqual((await dump(etcd, '/app/a'))[0], ['/app/a', Buffer.from('alpha').toString('base64')]);
  });

  test('each TLS misconfiguration fails with its own message, at validate time, before any backup', async () => {
    const foreign = await foreignClientCert(ca);
    const expired = await makeCerts(path.join(tmp, 'expired'), { keyType: 'ec', expired: true });
    secretKey(expired.clientKeyPem);
    const otherKey = secretKey(fs.readFileSync(ca.serverKey, 'utf8'));
    const cases: { name: string; cfg: Record<string, unknown>; field: string; message: RegExp }[] = [
      {
        name: 'no client certificate',
        cfg: { url: etcd.url, ca_cert: ca.caCertPem, prefix: '/app/' },
        field: 'endpoint',
        message: /requires a client certificate \(it runs with --client-cert-auth\), and none was given/,
      },
      {
        name: 'a client certificate from a CA etcd does not trust',
        cfg: { ...base, client_cert: foreign.cert, client_key: foreign.key },
        field: 'endpoint',
        message: /refused the client certificate \(CN=foreign-client\): it is not signed by a CA that etcd trusts/,
      },
      {
        name: 'a CA that did not sign the server certificate',
        cfg: { ...base, ca_cert: ca.otherCaCertPem },
        field: 'endpoint',
        message: /server certificate of etcd at https:\/\/127\.0\.0\.1:\d+ is not signed by ca_cert \(CN=etcd-shield-unrelated-ca\)/,
      },
      {
        name: 'no CA, so only the system roots',
        cfg: { ...base, ca_cert: undefined },
        field: 'endpoint',
        message: /is not signed by any CA this system trusts/,
      },
      {
        name: 'an expired client certificate',
        cfg: { ...base, client_cert: expired.clientCertPem, client_key: expired.clientKeyPem },
        field: 'client_cert',
        message: /expired on 2020-01-02T00:00:00\.000Z \(CN=etcd-shield-test-client\)/,
      },
      {
        name: 'a key that does not belong to the certificate',
        cfg: { ...base, client_key: otherKey },
        field: 'client_key',
        message: /does not belong to client_cert/,
      },
      {
        name: 'http:// to a TLS port',
        cfg: { url: etcd.url.replace('https://', 'http://'), prefix: '/app/' },
        field: 'endpoint',
        message: /if etcd serves TLS, write https:\/\//,
      },
      {
        name: 'http:// and https:// mixed',
        cfg: { ...base, url: `${etcd.url},${etcd.url.replace('https://', 'http://')}` },
        field: 'url',
        message: /mixes http:\/\/ and https:\/\/ endpoints/,
      },
    ];
    const messages = new Set<string>();
    for (const c of cases) {
      const v = await run(['validate', '-D', '-e', JSON.stringify(c.cfg)]);
      expectCode(v, 4, `validate: ${c.name}`);
      const bad = reportLines(v, c.field).filter((l) => l.mark === '✗');
      assert.equal(bad.length, 1, `${c.name}: one ✗ ${c.field} line\n${describeRun(v)}`);
      assert.match(bad[0]!.text, c.message, `${c.name}\n${describeRun(v)}`);
      messages.add(bad[0]!.text.replace(/\d+/g, 'N'));
      assert.match(v.stderr, /validation failed/);

      const b = await run(['backup', '-D', '-e', JSON.stringify(c.cfg)]);
      expectCode(b, 4, `backup: ${c.name}`);
      assert.equal(b.stdout.length, 0, `${c.name}: backup wrote nothing\n${describeRun(b)}`);
      assert.doesNotMatch(b.stderr, /unexpected error/, describeRun(b));
    }
    assert.equal(messages.size, cases.length, `every case has its own message:\n${[...messages].join('\n')}`);
  });

  test('insecure_skip_verify: works with an unrelated CA or none, warns on stderr every time', async () => {
    const cfg = { ...base, ca_cert: ca.otherCaCertPem, insecure_skip_verify: true };
    const v = await run(['validate', '-e', JSON.stringify(cfg)]);
    expectCode(v, 0, 'validate with insecure_skip_verify');
    assert.match(line(v, 'insecure_skip_verify').text, /WARNING: the server certificate is NOT verified/);
    assert.match(v.stderr, /warning: insecure_skip_verify is on/);
    assert.equal(v.stderr.match(/warning: insecure_skip_verify is on/g)!.length, 1, 'warned once per run');

    const b = await run(['backup', '-e', JSON.stringify({ ...cfg, ca_cert: undefined, insecure_skip_verify: 'yes' })]);
    expectCode(b, 0, 'backup without any CA');
    assert.match(b.stderr, /warning: insecure_skip_verify is on/);
    const r = await run(['restore', '-e', JSON.stringify(cfg)], { input: b.stdout });
    expectCode(r, 0, 'restore');
    assert.match(r.stderr, /warning: insecure_skip_verify is on/);

    // etcdctl's flag and variable; "false" in the variable means false.
    const flags = ['--url', etcd.url, '--cacert', ca.otherCaCert, '--cert', ca.clientCert, '--key', ca.clientKey, '--prefix', '/app/'];
    const f = await run(['backup', ...flags, '--insecure-skip-tls-verify']);
    expectCode(f, 0, '--insecure-skip-tls-verify');
    assert.match(f.stderr, /warning: insecure_skip_verify is on/);
    const e = await run(['backup', ...flags], { env: { ETCDCTL_INSECURE_SKIP_TLS_VERIFY: 'true' } });
    expectCode(e, 0, 'ETCDCTL_INSECURE_SKIP_TLS_VERIFY=true');
    assert.match(e.stderr, /warning: insecure_skip_verify is on/);
    const off = await run(['backup', ...flags], { env: { ETCDCTL_INSECURE_SKIP_TLS_VERIFY: 'false' } });
    expectCode(off, 4, 'ETCDCTL_INSECURE_SKIP_TLS_VERIFY=false verifies');
    assert.match(off.stderr, /not signed by ca_cert/);
    assert.doesNotMatch(off.stderr, /insecure_skip_verify is on/);

    // Off by default, and no warning then.
    const plain = await run(['validate', '-e', JSON.stringify(base)]);
    assert.match(line(plain, 'insecure_skip_verify').text, /^off: the server certificate is verified/);
    assert.doesNotMatch(plain.stderr, /insecure/);
  });
});

describe('role-based authentication over TLS, RSA certificates', () => {
  let etcd: EtcdCluster;
  let ca: CertSet;
  const root = { name: 'root', password: 'R00t-secret-pw' };
  const alice = { name: 'alice', password: 'Alice:pw-8472-secret' };
  const carol = { name: 'carol', password: 'Carol-pw-5521-secret' };
  const wrong = 'Wrong-pw-9137-secret';
  for (const p of [root.password, alice.password, carol.password, wrong]) secrets.add(p);

  before(async () => {
    etcd = await startEtcd({
      tls: true,
      keyType: 'rsa',
      rbac: {
        rootPassword: root.password,
        users: [
          { ...alice, readwritePrefix: '/alice/' },
          { ...carol, readPrefix: '/alice/' },
        ],
      },
    });
    ca = etcd.ca!;
    await seed(etcd, { '/alice/a': '1', '/alice/b': '2', '/secret/x': '3' });
  });
  after(async () => {
    await etcd?.stop();
  });

  const cfg = (extra: Record<string, unknown> = {}) => ({ url: etcd.url, ca_cert: ca.caCertPem, auth: RBAC, username: alice.name, password: alice.password, prefix: '/alice/', ...extra });

  test('Role-Based: validate, backup and restore (SHIELD fields, then CLI flags)', async () => {
    const v = await run(['validate', '-e', JSON.stringify(cfg())]);
    expectCode(v, 0, 'validate');
    assert.equal(line(v, 'password').text, '******** (set)');
    assert.match(line(v, 'identity').text, /user "alice" logged in, server certificate verified/);
    assert.match(line(v, 'write').text, /may write and delete in prefix "\/alice\/"/);

    const want = await dump(etcd, '/alice/');
    const b = await run(['backup', '-e', JSON.stringify(cfg())]);
    expectCode(b, 0, 'backup');
    await etcd.etcdctl(['del', '/alice/a'], { check: true });
    await seed(etcd, { '/alice/new': 'x' });
    expectCode(await run(['restore', '-e', JSON.stringify(cfg({ overwrite: true }))], { input: b.stdout }), 0, 'restore');
    assert.deepEqual(await dump(etcd, '/alice/'), want);

    // etcdctl style: --user name:password (the password itself holds a ':'), --cacert FILE.
    const out = path.join(tmp, 'rbac.archive');
    const flags = ['--endpoints', etcd.url, '--cacert', ca.caCert, '--user', `${alice.name}:${alice.password}`, '--prefix', '/alice/'];
    expectCode(await run(['backup', ...flags, '--out', out]), 0, 'backup with --user');
    expectCode(await run(['restore', ...flags, '--in', out]), 0, 'restore with --user');
    // And through the etcdctl variables.
    const env = { ETCDCTL_ENDPOINTS: etcd.url, ETCDCTL_CACERT: ca.caCert, ETCDCTL_USER: alice.name, ETCDCTL_PASSWORD: alice.password };
    expectCode(await run(['backup', '--prefix', '/alice/', '--out', out], { env }), 0, 'backup from ETCDCTL_*');
  });

  test('a wrong password is an authentication error naming the user', async () => {
    const v = await run(['validate', '--debug', '-e', JSON.stringify(cfg({ password: wrong }))]);
    expectCode(v, 4, 'validate');
    const auth = line(v, 'identity');
    assert.equal(auth.mark, '✗');
    assert.match(auth.text, /rejected user "alice": wrong user name or password/);
    assert.equal(reportLines(v, 'read').length, 0, 'nothing read after a failed login');

    const b = await run(['backup', '--debug', '-e', JSON.stringify(cfg({ password: wrong }))]);
    expectCode(b, 4, 'backup');
    assert.equal(b.stdout.length, 0);
    assert.match(b.stderr, /rejected user "alice": wrong user name or password/);
    const r = await run(['restore', '-D', '--endpoints', etcd.url, '--cacert', ca.caCert, '--user', `alice:${wrong}`, '--prefix', '/alice/', '--in', path.join(tmp, 'rbac.archive')]);
    expectCode(r, 4, 'restore');
    assert.match(r.stderr, /rejected user "alice"/);
  });

  test('a user without permission on the prefix: validate names the prefix, backup writes nothing', async () => {
    const v = await run(['validate', '-e', JSON.stringify(cfg({ prefix: '/secret/' }))]);
    expectCode(v, 4, 'validate');
    const read = line(v, 'read');
    assert.equal(read.mark, '✗');
    assert.match(read.text, /refused to let user "alice" read keys under prefix "\/secret\/": permission denied/);
    assert.match(v.stderr, /validation failed: read/);

    const b = await run(['backup', '-D', '-e', JSON.stringify(cfg({ prefix: '/secret/' }))]);
    expectCode(b, 4, 'backup');
    assert.equal(b.stdout.length, 0, 'no archive bytes at all');
    assert.match(b.stderr, /user "alice" read keys under prefix "\/secret\/": permission denied/);

    // Read-only: validate passes with a warning about restores, and restore is refused before any change.
    const ro = { ...cfg(), username: carol.name, password: carol.password };
    const vr = await run(['validate', '-e', JSON.stringify(ro)]);
    expectCode(vr, 0, 'validate read-only user');
    assert.equal(line(vr, 'write').mark, '!');
    assert.match(line(vr, 'write').text, /user "carol" write keys under prefix "\/alice\/": permission denied; backups work/);
    const archive = await run(['backup', '-e', JSON.stringify(ro)]);
    expectCode(archive, 0, 'backup as a read-only user');
    const before = await dump(etcd, '/alice/');
    const r = await run(['restore', '-e', JSON.stringify({ ...ro, overwrite: true })], { input: archive.stdout });
    expectCode(r, 4, 'restore as a read-only user');
    assert.match(r.stderr, /user "carol" write keys under prefix "\/alice\/": permission denied/);
    assert.deepEqual(await dump(etcd, '/alice/'), before);
  });

  test('no user on an RBAC cluster, then no auth at all: ca_cert still verifies the server', async () => {
    const none = { url: etcd.url, ca_cert: ca.caCertPem, prefix: '/alice/' };
    const v = await run(['validate', '-e', JSON.stringify(none)]);
    expectCode(v, 4, 'validate without a user');
    assert.match(line(v, 'read').text, /has authentication enabled, but no user was given/);

    await etcd.etcdctl(['auth', 'disable'], { check: true });
    try {
      const ok = await run(['validate', '-e', JSON.stringify(none)]);
      expectCode(ok, 0, 'validate, auth none over TLS');
      assert.match(line(ok, 'identity').text, /^server certificate verified$/);
      const b = await run(['backup', '-e', JSON.stringify(none)]);
      expectCode(b, 0, 'backup, auth none');
      expectCode(await run(['restore', '-e', JSON.stringify(none)], { input: b.stdout }), 0, 'restore, auth none');
      const bad = await run(['validate', '-e', JSON.stringify({ ...none, ca_cert: ca.otherCaCertPem })]);
      expectCode(bad, 4, 'validate with the wrong CA');
      assert.match(line(bad, 'endpoint').text, /not signed by ca_cert/);
      const extra = await run(['validate', '-e', JSON.stringify(cfg())]);
      expectCode(extra, 4, 'a user when auth is off');
      assert.match(extra.stdout.toString(), /does not have authentication enabled/);
    } finally {
      await etcd.etcdctl(['auth', 'enable'], { user: false, check: true });
    }
  });
});

describe('client certificates and RBAC together, RSA keys in PKCS#8 and PKCS#1', () => {
  let etcd: EtcdCluster;
  let ca: CertSet;
  const alice = { name: 'alice', password: 'Alice-both-4410-secret' };
  secrets.add(alice.password);

  before(async () => {
    etcd = await startEtcd({
      clientCertAuth: true,
      keyType: 'rsa',
      pkcs8: true,
      rbac: {
        rootPassword: 'Root-both-0071-secret',
        users: [
          { ...alice, readwritePrefix: '/alice/' },
          // etcd takes the user from the certificate's CN when no password is given.
          { name: CLIENT_CN, password: 'Cn-user-2290-secret', readwritePrefix: '/cn/' },
        ],
      },
    });
    secrets.add('Root-both-0071-secret');
    secrets.add('Cn-user-2290-secret');
    ca = etcd.ca!;
    secretKey(ca.clientKeyPem);
    await seed(etcd, { '/alice/1': 'one', '/alice/2': 'two', '/cn/1': 'cn-one' });
  });
  after(async () => {
    await etcd?.stop();
  });

  test('Both: user and password plus a client certificate (PKCS#8, then PKCS#1 RSA key)', async () => {
    assert.match(ca.clientKeyPem, /BEGIN PRIVATE KEY/);
    const cfg = { url: etcd.url, auth: BOTH, username: alice.name, password: alice.password, client_cert: ca.clientCertPem, client_key: ca.clientKeyPem, ca_cert: ca.caCertPem, prefix: '/alice/' };
    const v = await run(['validate', '-e', JSON.stringify(cfg)]);
    expectCode(v, 0, 'validate Both');
    assert.match(line(v, 'client_key').text, /RSA 2048-bit private key, PKCS#8/);
    assert.match(line(v, 'identity').text, /user "alice" logged in, client certificate CN=etcd-shield-test-client accepted/);
    const want = await dump(etcd, '/alice/');
    const b = await run(['backup', '-e', JSON.stringify(cfg)]);
    expectCode(b, 0, 'backup Both');
    await etcd.etcdctl(['del', '/alice/', '--prefix'], { check: true });

    const pkcs1 = write('client-rsa-pkcs1.key', secretKey(toPkcs1(ca.clientKeyPem)));
    assert.match(fs.readFileSync(pkcs1, 'utf8'), /BEGIN RSA PRIVATE KEY/);
    const archive = write('both.archive', '');
    fs.writeFileSync(archive, b.stdout);
    const r = await run(['restore', '--endpoints', etcd.url, '--cacert', ca.caCert, '--cert', ca.clientCert, '--key', pkcs1, '--user', alice.name, '--password', alice.password, '--prefix', '/alice/', '--in', archive]);
    expectCode(r, 0, 'restore Both from flags, PKCS#1 key');
    assert.deepEqual(await dump(etcd, '/alice/'), want);

    // A wrong password still fails, even though the certificate is fine.
    const w = await run(['validate', '-e', JSON.stringify({ ...cfg, password: 'Wrong-both-0000-secret' })]);
    secrets.add('Wrong-both-0000-secret');
    expectCode(w, 4, 'Both, wrong password');
    assert.match(w.stdout.toString(), /rejected user "alice": wrong user name or password/);
  });

  test('Certificate-Based on an RBAC cluster acts as the user named by the certificate', async () => {
    const cfg = { url: etcd.url, auth: CERT, client_cert: ca.clientCertPem, client_key: ca.clientKeyPem, ca_cert: ca.caCertPem, prefix: '/cn/' };
    const v = await run(['validate', '-e', JSON.stringify(cfg)]);
    expectCode(v, 0, 'validate');
    const b = await run(['backup', '-e', JSON.stringify(cfg)]);
    expectCode(b, 0, 'backup as the certificate user');
    await etcd.etcdctl(['put', '/cn/1', 'changed'], { check: true });
    expectCode(await run(['restore', '-e', JSON.stringify(cfg)], { input: b.stdout }), 0, 'restore');
    assert.deepEqual(await dump(etcd, '/cn/'), [['/cn/1', Buffer.from('cn-one').toString('base64')]]);

    const denied = await run(['validate', '-e', JSON.stringify({ ...cfg, prefix: '/alice/' })]);
    expectCode(denied, 4, 'the certificate user on a prefix it may not read');
    assert.match(line(denied, 'read').text, new RegExp(`user "${CLIENT_CN}" \\(the client certificate's common name\\) read keys under prefix "/alice/": permission denied`));
  });
});

test('no password or private key ever appeared in any output, --debug included', () => {
  assert.ok(outputs.length > 30, `expected many runs, saw ${outputs.length}`);
  assert.ok(outputs.some((o) => o.args.includes('--debug') || o.args.includes('-D')));
  assert.ok(secrets.size > 10);
  for (const o of outputs) {
    for (const s of secrets) {
      assert.ok(!o.text.includes(s), `secret ${s.slice(0, 6)}… shown by etcd-shield ${o.args[0]}:\n${o.text.slice(0, 3000)}`);
    }
  }
});
