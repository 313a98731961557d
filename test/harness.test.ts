import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { freePort, startEtcd, withEtcd } from './harness';

test('freePort hands out distinct loopback ports', async () => {
  const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()));
  assert.equal(new Set(ports).size, ports.length);
});

test('single node: put/get round-trip, stop removes data', async () => {
  const c = await startEtcd();
  const dataDir = c.nodes[0].dataDir;
  try {
    assert.match(c.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    await c.etcdctl(['put', '/a/k1', 'v1'], { check: true });
    // Binary-safe value via stdin.
    await c.etcdctl(['put', '/a/k2'], { input: Buffer.from([0, 1, 2, 255]), check: true });
    const r = await c.etcdctl(['get', '/a/k1', '--print-value-only'], { check: true });
    assert.equal(r.stdout.toString().trim(), 'v1');
    const r2 = await c.etcdctl(['get', '/a/k2', '--print-value-only'], { check: true });
    assert.deepEqual(r2.stdout.subarray(0, 4), Buffer.from([0, 1, 2, 255]));
    assert.ok(fs.existsSync(dataDir));
  } finally {
    await c.stop();
  }
  assert.equal(fs.existsSync(dataDir), false);
  assert.equal(fs.existsSync(c.dir), false);
  assert.equal(c.nodes[0].running, false);
});

test('3-member cluster', async () => {
  await withEtcd({ members: 3 }, async (c) => {
    assert.equal(c.endpoints.length, 3);
    const r = await c.etcdctl(['member', 'list'], { check: true });
    const lines = r.stdout.toString().trim().split('\n');
    assert.equal(lines.length, 3);
    for (const n of c.nodes) assert.ok(lines.some((l) => l.includes(n.peerUrl)), n.peerUrl);
    await c.etcdctl(['put', 'k', 'v'], { endpoints: [c.endpoints[0]], check: true });
    const g = await c.etcdctl(['get', 'k', '--print-value-only'], { endpoints: [c.endpoints[2]], check: true });
    assert.equal(g.stdout.toString().trim(), 'v');
  });
});

test('TLS + client cert auth', async () => {
  await withEtcd({ tls: true, clientCertAuth: true, keyType: 'ec' }, async (c) => {
    assert.match(c.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(c.ca);
    assert.match(c.ca.caCertPem, /BEGIN CERTIFICATE/);
    assert.match(c.ca.clientKeyPem, /BEGIN EC PRIVATE KEY/);
    await c.etcdctl(['put', 'tls-k', 'tls-v'], { check: true });
    const g = await c.etcdctl(['get', 'tls-k', '--print-value-only'], { check: true });
    assert.equal(g.stdout.toString().trim(), 'tls-v');
    // Without a client cert the server must refuse.
    const bare = await c.etcdctl(
      ['get', 'tls-k', '--dial-timeout=1s', '--command-timeout=2s', `--cacert=${c.ca.caCert}`],
      { bare: true },
    );
    assert.notEqual(bare.code, 0);
  });
});

test('RBAC: root and a prefix-limited user', async () => {
  const rbac = {
    rootPassword: 'r00t:pw',
    users: [{ name: 'alice', password: 'alice-pw', readwritePrefix: '/alice/' }],
  };
  await withEtcd({ rbac }, async (c) => {
    await c.etcdctl(['put', '/other/x', '1'], { check: true });
    // etcdctl 3.4 has no `auth status`; listing users needs root.
    const users = await c.etcdctl(['user', 'list'], { check: true });
    assert.deepEqual(users.stdout.toString().trim().split('\n').sort(), ['alice', 'root']);
    const alice = { name: 'alice', password: 'alice-pw' };
    await c.etcdctl(['put', '/alice/x', '2'], { user: alice, check: true });
    const denied = await c.etcdctl(['put', '/bob/x', '3'], { user: alice });
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /permission denied/);
    const anon = await c.etcdctl(['get', '/other/x'], { user: false });
    assert.notEqual(anon.code, 0);
  });
});

test('kill/start keeps data; pause/resume', async () => {
  await withEtcd({}, async (c) => {
    const n = c.nodes[0];
    await c.etcdctl(['put', 'persist', 'yes'], { check: true });
    const oldPid = n.proc.pid;
    await n.kill();
    assert.equal(n.running, false);
    await n.start();
    assert.notEqual(n.proc.pid, oldPid);
    const g = await c.etcdctl(['get', 'persist', '--print-value-only'], { check: true });
    assert.equal(g.stdout.toString().trim(), 'yes');

    n.pause();
    const stalled = await c.etcdctl(['get', 'persist', '--dial-timeout=500ms', '--command-timeout=500ms']);
    assert.notEqual(stalled.code, 0);
    n.resume();
    const g2 = await c.etcdctl(['get', 'persist', '--print-value-only'], { check: true });
    assert.equal(g2.stdout.toString().trim(), 'yes');
  });
});

test('RSA/PKCS#8 certs: expired client cert and unrelated CA are rejected', async () => {
  await withEtcd({ clientCertAuth: true, keyType: 'rsa', pkcs8: true, expiredClientCert: true }, async (c) => {
    const ca = c.ca!;
    assert.equal(c.tls, true);
    assert.match(ca.clientKeyPem, /^-----BEGIN PRIVATE KEY-----/);
    assert.match(fs.readFileSync(ca.serverKey, 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
    await c.etcdctl(['put', 'k', 'v'], { check: true }); // helper uses the server cert here
    const quick = ['--dial-timeout=1s', '--command-timeout=1s'];
    const expired = await c.etcdctl(
      ['get', 'k', ...quick, `--cacert=${ca.caCert}`, `--cert=${ca.clientCert}`, `--key=${ca.clientKey}`],
      { bare: true },
    );
    assert.notEqual(expired.code, 0);
    const wrongCa = await c.etcdctl(
      ['get', 'k', ...quick, `--cacert=${ca.otherCaCert}`, `--cert=${ca.serverCert}`, `--key=${ca.serverKey}`],
      { bare: true },
    );
    assert.notEqual(wrongCa.code, 0);
  });
});
