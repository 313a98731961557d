// backup --mode snapshot against real etcd: which member, backpressure, a
// member dying mid-stream (stdout and --out), and SHIELD's mode field end to end.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Etcd3 } from 'etcd3';
import { spawnSync } from 'node:child_process';
import { CLIENT_CN } from './certs';
import { binPath, childEnv, describeRun, expectCode, runCli, startCli, type RunningCli } from './cli';
import { metricTotal } from './fault-points';
import { startEtcd, type EtcdCluster } from './harness';
import type { VerifySummary } from '../src/api/verify';

const MB = 1024 * 1024;
/** Large enough that etcd cannot push it all into the HTTP/2 window and socket buffers. */
const BIG_VALUES = 80;

let tmp: string;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Messages an etcd member has sent on Maintenance.Snapshot streams. */
const snapshotMessagesSent = (clientUrl: string) => metricTotal(clientUrl, 'grpc_server_msg_sent_total', ['grpc_method="Snapshot"']);

/** Waits until the CLI's part file for `name` holds some bytes; returns how many. */
async function partFileHolding(dir: string, name: string, run: RunningCli): Promise<number> {
  for (;;) {
    const part = fs.readdirSync(dir).find((f) => f.startsWith(`.${name}.`) && f.endsWith('.part'));
    const bytes = part ? fs.statSync(path.join(dir, part)).size : 0;
    if (bytes > 0) return bytes;
    if (run.child.exitCode !== null) assert.fail(`the backup ended before the fault\n${describeRun(await run.exit)}`);
    await sleep(1);
  }
}

async function seedBig(url: string): Promise<void> {
  const client = new Etcd3({ hosts: url, grpcOptions: { 'grpc.max_send_message_length': 4 * MB } });
  try {
    for (let i = 0; i < BIG_VALUES; i++) await client.kv.put({ key: Buffer.from(`/big/${i}`), value: randomBytes(MB) });
  } finally {
    client.close();
  }
}

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-shield-snapbk-'));
});
after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('three members', () => {
  let cluster: EtcdCluster;
  before(async () => {
    cluster = await startEtcd({ members: 3 });
    const client = new Etcd3({ hosts: cluster.endpoints });
    for (let i = 0; i < 50; i++) await client.put(`/k/${i}`).value(`v${i}`);
    client.close();
  });
  after(async () => cluster?.stop());

  test('the first endpoint down: a healthy member is picked and named; --member picks one', async () => {
    const [first, second, third] = cluster.nodes;
    await first!.kill();
    try {
      const out = path.join(tmp, 'picked.db');
      const r = await runCli(['backup', '--endpoints', cluster.url, '--mode', 'snapshot', '--out', out]);
      expectCode(r, 0, 'backup --mode snapshot with one member down');
      assert.match(r.stderr, new RegExp(`etcd snapshot of member [0-9a-f]+ \\((leader|follower)\\) at ${second!.clientUrl},`));
      const v = await runCli(['verify', '--in', out, '--json']);
      expectCode(v, 0, 'verify');
      assert.equal((JSON.parse(v.stdout.toString('utf8')) as VerifySummary).keys, 50);
    } finally {
      await first!.start();
    }
    const r = await runCli(['backup', '--endpoints', cluster.url, '--mode', 'snapshot', '--member', third!.clientUrl, '--out', path.join(tmp, 'third.db')]);
    expectCode(r, 0, '--member');
    assert.match(r.stderr, new RegExp(`at ${third!.clientUrl},`));
  });

  test('--member that is down fails, naming it; --member without snapshot mode is a usage error', async () => {
    const down = cluster.nodes[2]!;
    await down.kill();
    try {
      const r = await runCli(['backup', '--endpoints', cluster.url, '--mode', 'snapshot', '--member', down.clientUrl, '--out', path.join(tmp, 'down.db')]);
      expectCode(r, 4, '--member down');
      assert.match(r.stderr, new RegExp(`no etcd member could be asked for a snapshot: cannot reach etcd at ${down.clientUrl}`));
      assert.equal(fs.existsSync(path.join(tmp, 'down.db')), false);
    } finally {
      await down.start();
    }
    const u = await runCli(['backup', '--endpoints', cluster.url, '--member', down.clientUrl]);
    expectCode(u, 1, '--member in logical mode');
    // Refused before any connection: another scheme than the endpoints, two URLs, not a URL.
    for (const [member, message] of [
      [down.clientUrl.replace('http://', 'https://'), /uses another scheme than the endpoints/],
      [`${cluster.nodes[0]!.clientUrl},${cluster.nodes[1]!.clientUrl}`, /--member takes one client URL, not 2/],
      ['http://no such host', /contains white space/],
    ] as const) {
      const b = await runCli(['backup', '--endpoints', cluster.url, '--mode', 'snapshot', '--member', member, '--out', path.join(tmp, 'bad-member.db')]);
      expectCode(b, 4, `--member ${member}`);
      assert.match(b.stderr, message);
      assert.doesNotMatch(b.stderr, /no etcd member could be asked/);
    }
    assert.equal(fs.existsSync(path.join(tmp, 'bad-member.db')), false);
  });
});

describe('one member with a large database', () => {
  let etcd: EtcdCluster;
  let dbBytes = 0;
  before(async () => {
    etcd = await startEtcd();
    await seedBig(etcd.url);
    const out = path.join(tmp, 'big.db');
    expectCode(await runCli(['backup', '--endpoints', etcd.url, '--mode', 'snapshot', '--out', out], { timeoutMs: 120_000 }), 0, 'big snapshot');
    dbBytes = fs.statSync(out).size;
    assert.ok(dbBytes > BIG_VALUES * MB, `${dbBytes} bytes`);
  });
  after(async () => etcd?.stop());

  test('the CLI takes a snapshot without loading etcd3\'s client, and collects young garbage every 4 MiB', async () => {
    // A preloaded hook lists every module the process loaded, at exit.
    const hook = path.join(tmp, 'modules-hook.js');
    fs.writeFileSync(hook, "process.on('exit', () => require('fs').writeFileSync(process.env.MODULE_LIST, Object.keys(require.cache).join('\\n')));\n");
    const loaded = async (args: string[], nodeFlags: string[] = []) => {
      const list = path.join(tmp, 'modules.txt');
      fs.rmSync(list, { force: true });
      const r = await runCli(args, { nodeFlags: ['--require', hook, ...nodeFlags], env: { MODULE_LIST: list }, timeoutMs: 120_000 });
      expectCode(r, 0, args.join(' '));
      return { r, modules: fs.readFileSync(list, 'utf8').split('\n') };
    };
    const has = (modules: string[], re: RegExp) => modules.some((m) => re.test(m));

    const out = path.join(tmp, 'light.db');
    const { r, modules } = await loaded(['backup', '--endpoints', etcd.url, '--mode', 'snapshot', '--out', out], ['--trace-gc']);
    assert.ok(has(modules, /node_modules\/@grpc\/grpc-js\//), 'grpc-js carries the snapshot');
    assert.ok(!has(modules, /node_modules\/etcd3\/lib\/(index|connection-pool)\.js$/), `etcd3's client was loaded:\n${modules.filter((m) => /etcd3/.test(m)).join('\n')}`);
    assert.ok(!has(modules, /node_modules\/@grpc\/proto-loader\//), 'a .proto was parsed');
    // gc() calls show in V8's trace as collections for "testing"; --trace-gc writes to stdout, the snapshot went to --out.
    const nudges = (r.stdout.toString('utf8').match(/Scavenge.*testing/g) ?? []).length;
    assert.ok(nudges >= Math.floor(fs.statSync(out).size / (4 * MB)) - 1, `${nudges} young-generation collections asked for ${fs.statSync(out).size} bytes`);
    expectCode(await runCli(['verify', '--in', out]), 0, 'verify');

    // The same hook does see etcd3 where it is used.
    const logical = await loaded(['backup', '--endpoints', etcd.url, '--out', path.join(tmp, 'logical.archive')]);
    assert.ok(has(logical.modules, /node_modules\/etcd3\/lib\/index\.js$/), 'a logical backup loads etcd3');
  });

  test('a reader that stops reading stops the stream; the member dying then fails the backup, and the output is refused', async () => {
    const sentBefore = await snapshotMessagesSent(etcd.url);
    const run = startCli(['backup', '--endpoints', etcd.url, '--mode', 'snapshot'], { holdStdout: true });
    await run.firstBytes;
    // Wait until etcd has sent all it can into the paused pipe, the HTTP/2 window and the socket buffers.
    let sent = -1;
    for (let same = 0; same < 5; ) {
      await sleep(200);
      const now = (await snapshotMessagesSent(etcd.url)) - sentBefore;
      same = now === sent ? same + 1 : 0;
      sent = now;
    }
    const total = Math.ceil(dbBytes / (32 * 1024)); // etcd sends 32 KiB per message
    assert.ok(sent < total / 2, `etcd sent ${sent} of ${total} messages while nobody read stdout: no backpressure`);
    await etcd.nodes[0]!.kill();
    try {
      run.child.stdout.resume();
      const r = await run.exit;
      expectCode(r, 4, 'backup when the member died mid-stream');
      assert.match(r.stderr, /stream a snapshot from|snapshot stream from etcd member .* is not intact/);
      // What reached stdout is a cut-short snapshot: restore and verify refuse it.
      const partial = path.join(tmp, 'partial.db');
      fs.writeFileSync(partial, r.stdout);
      assert.ok(r.stdout.length < dbBytes, `${r.stdout.length} of ${dbBytes} bytes written`);
      const v = await runCli(['verify', '--in', partial]);
      expectCode(v, 4, 'verify of the cut-short output');
    } finally {
      await etcd.nodes[0]!.start();
    }
  });

  test('a member that stops sending mid-stream fails the backup after the timeout (at least 5 s), keeping the previous file', async () => {
    const out = path.join(tmp, 'stalled.db');
    fs.writeFileSync(out, 'the previous backup');
    const run = startCli(['backup', '--endpoints', etcd.url, '--mode', 'snapshot', '--timeout', '1', '--out', out]);
    const held = await partFileHolding(tmp, 'stalled.db', run);
    etcd.nodes[0]!.pause();
    try {
      assert.ok(held < dbBytes, `the part file already held ${held} of ${dbBytes} bytes: the stall would not fall mid-stream`);
      const r = await run.exit;
      expectCode(r, 4, 'backup from a stalled member');
      assert.match(r.stderr, /etcd member [0-9a-f]+ at .* sent no snapshot data for 5 s after \d+ bytes/);
      assert.equal(fs.readFileSync(out, 'utf8'), 'the previous backup');
    } finally {
      etcd.nodes[0]!.resume();
    }
  });

  test('a write to --out that fails (here a file size limit) fails the backup naming the file, keeping the previous one', () => {
    const out = path.join(tmp, 'limited.db');
    fs.writeFileSync(out, 'the previous backup');
    // 2 MiB (bash counts KiB); node ignores SIGXFSZ, so the write past it fails with EFBIG.
    const args = [process.execPath, binPath, 'backup', '--endpoints', etcd.url, '--mode', 'snapshot', '--out', out];
    const r = spawnSync('bash', ['-c', 'ulimit -f 2048 && exec "$@"', 'bash', ...args], { env: childEnv(), encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 4, r.stderr);
    assert.match(r.stderr, new RegExp(`cannot write ${out.replace(/[.]/g, '\\.')}: EFBIG`));
    assert.match(r.stderr, /what to do: check free space and permissions/);
    assert.equal(fs.readFileSync(out, 'utf8'), 'the previous backup');
    assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.endsWith('.part')), []);
  });

  test('--out keeps the previous file when the member dies mid-stream, and leaves no part file', async () => {
    const out = path.join(tmp, 'kept.db');
    fs.writeFileSync(out, 'the previous backup');
    const run = startCli(['backup', '--endpoints', etcd.url, '--mode', 'snapshot', '--out', out]);
    const held = await partFileHolding(tmp, 'kept.db', run);
    run.child.kill('SIGSTOP');
    assert.ok(held < dbBytes, `the part file already held ${held} of ${dbBytes} bytes: the fault would not fall mid-stream`);
    await etcd.nodes[0]!.kill();
    run.child.kill('SIGCONT');
    try {
      const r = await run.exit;
      expectCode(r, 4, 'backup --out when the member died mid-stream');
      assert.equal(fs.readFileSync(out, 'utf8'), 'the previous backup');
      assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.endsWith('.part')), []);
    } finally {
      await etcd.nodes[0]!.start();
    }
  });
});

describe('SHIELD mode field end to end', () => {
  let etcd: EtcdCluster;
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => etcd?.stop());

  test('backup -e {"mode":"snapshot"} to stdout, then restore -e from stdin puts the keyspace back', async () => {
    const client = new Etcd3({ hosts: etcd.url });
    try {
      for (let i = 0; i < 20; i++) await client.put(`/app/${i}`).value(`v${i}`);
      const endpoint = JSON.stringify({ url: etcd.url, mode: 'snapshot' });
      const b = await runCli(['backup', '-e', endpoint]);
      expectCode(b, 0, 'SHIELD backup in snapshot mode');
      assert.equal(b.stdout.length % 512, 32, 'etcd\'s sha256 trailer follows the database, as etcdctl writes it');
      await client.put('/app/3').value('changed');
      await client.delete().key('/app/4');
      await client.put('/app/new').value('added');
      const r = await runCli(['restore', '-e', JSON.stringify({ url: etcd.url, overwrite: true })], { input: b.stdout });
      expectCode(r, 0, 'SHIELD restore of a snapshot');
      const kvs = await client.getAll().prefix('/app/').strings();
      assert.deepEqual(kvs, Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`/app/${i}`, `v${i}`])));
      const bad = await runCli(['validate', '--offline', '-e', JSON.stringify({ url: etcd.url, mode: 'snapshot', prefix: '/app/' })]);
      assert.notEqual(bad.code, 0);
      assert.match(bad.stdout.toString('utf8'), /✗ prefix\s+must be empty in snapshot mode/);
    } finally {
      client.close();
    }
  });
});

describe('with authentication', () => {
  let etcd: EtcdCluster;
  before(async () => {
    etcd = await startEtcd({ rbac: { rootPassword: 'root-pw', users: [{ name: 'bob', password: 'bob-pw', readwritePrefix: '' }] } });
  });
  after(async () => etcd?.stop());

  test('a snapshot needs the root role: another user is refused with that hint, root is not', async () => {
    const bob = await runCli(['backup', '--endpoints', etcd.url, '--mode', 'snapshot', '--user', 'bob:bob-pw', '--out', path.join(tmp, 'bob.db')]);
    expectCode(bob, 4, 'snapshot as bob');
    assert.match(bob.stderr, /etcd refused to let user "bob" stream a snapshot/);
    assert.match(bob.stderr, /root role/);
    assert.doesNotMatch(bob.stderr, /bob-pw/);
    const root = await runCli(['backup', '--endpoints', etcd.url, '--mode', 'snapshot', '--user', 'root:root-pw', '--out', path.join(tmp, 'root.db')]);
    expectCode(root, 0, 'snapshot as root');
  });
});

describe('with client certificates', () => {
  let etcd: EtcdCluster;
  before(async () => {
    etcd = await startEtcd({ clientCertAuth: true });
  });
  after(async () => etcd?.stop());

  test('backup --mode snapshot over TLS with a client certificate', async () => {
    const ca = etcd.ca!;
    const out = path.join(tmp, 'tls.db');
    const r = await runCli(['backup', '--endpoints', etcd.url, '--cacert', ca.caCert, '--cert', ca.clientCert, '--key', ca.clientKey, '--mode', 'snapshot', '--out', out]);
    expectCode(r, 0, 'snapshot over TLS');
    assert.match(r.stderr, /at https:\/\/127\.0\.0\.1:\d+, revision \d+/);
    expectCode(await runCli(['verify', '--in', out]), 0, 'verify');
  });
});

describe('TLS, client certificates and users together', () => {
  let etcd: EtcdCluster;
  const rootPassword = 'Root-snap-5521-secret';
  before(async () => {
    // etcd takes the user from the certificate's common name when no password is given.
    etcd = await startEtcd({ clientCertAuth: true, rbac: { rootPassword, users: [{ name: CLIENT_CN, password: 'Cn-snap-7734-secret', readwritePrefix: '' }] } });
  });
  after(async () => etcd?.stop());

  test('root with a password and a client certificate; every wrong setting fails with its own message, naming the endpoint', async () => {
    const ca = etcd.ca!;
    const tlsFlags = ['--cacert', ca.caCert, '--cert', ca.clientCert, '--key', ca.clientKey];
    const snapshot = (flags: string[], name: string) => runCli(['backup', '--endpoints', etcd.url, '--mode', 'snapshot', ...flags, '--out', path.join(tmp, name)]);

    const ok = await snapshot([...tlsFlags, '--user', `root:${rootPassword}`], 'both.db');
    expectCode(ok, 0, 'root, password and certificate');
    assert.match(ok.stderr, /etcd snapshot of member [0-9a-f]+ \(leader\) at https:/);
    expectCode(await runCli(['verify', '--in', path.join(tmp, 'both.db')]), 0, 'verify');

    const cases: [string, string[], RegExp][] = [
      ['a wrong password', [...tlsFlags, '--user', 'root:Wrong-snap-0000-secret'], /etcd at https:\/\/127\.0\.0\.1:\d+ rejected user "root": wrong user name or password/],
      ['a CA that did not sign the server certificate', ['--cacert', ca.otherCaCert, '--cert', ca.clientCert, '--key', ca.clientKey, '--user', `root:${rootPassword}`], /server certificate of etcd at https:\/\/127\.0\.0\.1:\d+ is not signed by ca_cert/],
      ['no client certificate', ['--cacert', ca.caCert, '--user', `root:${rootPassword}`], /etcd at https:\/\/127\.0\.0\.1:\d+ requires a client certificate/],
      ['the certificate\'s user, which has no root role', tlsFlags, new RegExp(`etcd refused to let user "${CLIENT_CN}" \\(the client certificate's common name\\) stream a snapshot`)],
    ];
    for (const [what, flags, message] of cases) {
      const r = await snapshot(flags, 'bad.db');
      expectCode(r, 4, what);
      assert.match(r.stderr, message, what);
      assert.doesNotMatch(r.stderr, /Secret|secret|PRIVATE KEY/, `${what}: no secret in the output`);
      assert.equal(fs.existsSync(path.join(tmp, 'bad.db')), false, `${what}: no output file`);
    }
    assert.match((await snapshot(tlsFlags, 'bad.db')).stderr, /only users with the root role take a snapshot/);

    const skip = await snapshot(['--cacert', ca.otherCaCert, '--cert', ca.clientCert, '--key', ca.clientKey, '--user', `root:${rootPassword}`, '--insecure-skip-tls-verify'], 'unverified.db');
    expectCode(skip, 0, 'insecure_skip_verify with an unrelated CA');
    assert.equal(skip.stderr.match(/warning: insecure_skip_verify is on/g)?.length, 1, skip.stderr);
  });
});
