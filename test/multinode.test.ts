// A three-member cluster through the real CLI: validate's view of endpoints,
// leader and members; and backup and restore that lose a member half-way.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Etcd3, type IRequestOp } from 'etcd3';
import { scanArchive } from '../src/archive/read';
import type { ArchiveHeader, KeyRecord } from '../src/archive/types';
import { binPath, childEnv, describeRun, expectCode, killStartedClis, repoRoot, reportLines, runCli, startCli, type CliResult } from './cli';
import { startEtcd, type EtcdCluster, type EtcdNode } from './harness';

const KEYS = 24_000;
const VALUE_BYTES = 500;
// Far above what the paused reader plus the CLI's 4 MiB output buffer can hold,
// so the member dies while the backup still has most pages to read.
const PAUSE_AFTER_BYTES = 2 * 1024 * 1024;
const PAGE_BYTES = '65536';

let etcd: EtcdCluster;
let tmp: string;



const key = (i: number) => `/big/${String(i).padStart(6, '0')}`;
const valueOf = (i: number, gen: string) => `${gen}:${i}:`.padEnd(VALUE_BYTES, String.fromCharCode(97 + (i % 26)));

async function withClient<T>(endpoints: string[], fn: (c: Etcd3) => Promise<T>): Promise<T> {
  const c = new Etcd3({ hosts: endpoints, grpcOptions: { 'grpc.max_receive_message_length': 256 * 1024 * 1024 } });
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

async function putAll(endpoints: string[], kvs: [string, string][]): Promise<void> {
  await withClient(endpoints, async (c) => {
    for (let i = 0; i < kvs.length; i += 100) {
      const success: IRequestOp[] = kvs.slice(i, i + 100).map(([k, v]) => ({ request_put: { key: Buffer.from(k), value: Buffer.from(v) } }));
      await c.kv.txn({ compare: [], success, failure: [] });
    }
  });
}

interface Kv {
  value: string;
  create: string;
  mod: string;
  version: string;
}

/** Every key under the prefix as the cluster holds it now, or at `revision`. */
async function clusterAt(endpoints: string[], prefix: string, revision?: string): Promise<Map<string, Kv>> {
  return withClient(endpoints, async (c) => {
    const end = Buffer.from(prefix);
    end[end.length - 1]!++;
    const r = await c.kv.range({ key: Buffer.from(prefix), range_end: end, revision });
    return new Map(
      r.kvs.map((kv) => [kv.key.toString('latin1'), { value: kv.value.toString('latin1'), create: kv.create_revision, mod: kv.mod_revision, version: kv.version }]),
    );
  });
}

async function readArchive(file: string): Promise<{ header?: ArchiveHeader; records: Map<string, Kv>; trailer: boolean }> {
  let header: ArchiveHeader | undefined;
  let trailer = false;
  const records = new Map<string, Kv>();
  await scanArchive(file, (items) => {
    for (const item of items) {
      if (item.kind === 'header') header = item.header;
      if (item.kind === 'trailer') trailer = true;
      if (item.kind === 'record') {
        const r: KeyRecord = item.record;
        assert.ok(!records.has(r.key.toString('latin1')), `key ${r.key.toString('latin1')} appears twice`);
        records.set(r.key.toString('latin1'), { value: r.value.toString('latin1'), create: r.createRevision, mod: r.modRevision, version: r.version });
      }
    }
  });
  return { header, records, trailer };
}

/**
 * Runs `backup` to stdout, stops reading its output after PAUSE_AFTER_BYTES
 * (so the backup stalls part-way), runs `midway`, then reads the rest.
 */
function backupWithPause(args: string[], midway: () => Promise<void>): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [binPath, 'backup', ...args], { cwd: repoRoot, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let received = 0;
    let paused = false;
    let midwayDone: Promise<void> = Promise.resolve();
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.stdout.on('data', (b: Buffer) => {
      out.push(b);
      received += b.length;
      if (!paused && received >= PAUSE_AFTER_BYTES) {
        paused = true;
        child.stdout.pause();
        midwayDone = midway().then(
          () => void child.stdout.resume(),
          (e: unknown) => {
            child.kill('SIGKILL');
            reject(e);
          },
        );
      }
    });
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      void midwayDone.then(() => {
        if (!paused) reject(new Error(`the backup ended after ${received} bytes, before the pause point (exit ${code}): ${Buffer.concat(err).toString('utf8')}`));
        resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') });
      });
    });
  });
}

async function leaderNode(): Promise<EtcdNode> {
  const r = await etcd.etcdctl(['endpoint', 'status', '-w', 'json'], { check: true });
  const statuses = JSON.parse(r.stdout.toString('utf8')) as { Endpoint: string; Status: { header: { member_id: number }; leader: number } }[];
  const leader = statuses.find((s) => s.Status.header.member_id === s.Status.leader);
  assert.ok(leader, r.stdout.toString('utf8'));
  return etcd.nodes.find((n) => n.clientUrl === leader.Endpoint)!;
}

async function restart(node: EtcdNode): Promise<void> {
  if (!node.running) await node.start();
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-shield-multinode-'));
  etcd = await startEtcd({ members: 3 });
  const kvs: [string, string][] = [];
  for (let i = 0; i < KEYS; i++) kvs.push([key(i), valueOf(i, 'v1')]);
  await putAll(etcd.endpoints, kvs);
});

after(async () => {
  killStartedClis();
  await etcd?.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('validate on three members', () => {
  test('reports each endpoint, the leader and the member list', async () => {
    const v = await runCli(['validate', '--url', etcd.url, '--prefix', '/big/']);
    expectCode(v, 0, 'validate');
    const endpoints = reportLines(v, 'endpoint');
    assert.equal(endpoints.length, 3, describeRun(v));
    for (const n of etcd.nodes) {
      const l = endpoints.find((e) => e.text.startsWith(`${n.clientUrl}:`));
      assert.ok(l, `${n.clientUrl}\n${describeRun(v)}`);
      assert.equal(l.mark, '✓');
      assert.match(l.text, new RegExp(`healthy, etcd 3\\.\\d+\\.\\d+, member ${n.name} \\([0-9a-f]+\\), (leader|follower)`));
    }
    const leader = await leaderNode();
    const [leaderLine] = reportLines(v, 'leader');
    assert.equal(leaderLine?.mark, '✓', describeRun(v));
    assert.match(leaderLine!.text, new RegExp(`^${leader.name} \\([0-9a-f]+\\) at ${leader.clientUrl}$`));
    assert.equal(endpoints.filter((e) => / leader,/.test(e.text)).length, 1);
    const [members] = reportLines(v, 'members');
    assert.match(members!.text, /^3: /);
    for (const n of etcd.nodes) assert.ok(members!.text.includes(`${n.name} `) && members!.text.includes(n.clientUrl), n.name);
    assert.match(reportLines(v, 'read')[0]!.text, new RegExp(`may read prefix "/big/": ${KEYS} keys`));

    // https:// is TLS; these members serve plain http.
    const tls = await runCli(['validate', '--url', etcd.endpoints.map((u) => u.replace('http://', 'https://')).join(',')]);
    expectCode(tls, 4, 'https:// to plain members');
    for (const l of reportLines(tls, 'endpoint')) assert.match(l.text, /does not speak TLS \(.*\); for plain http, write http:\/\//);
  });

  test('one member down: a warning line for it, the others still pass; all listed members down fails', async () => {
    const victim = etcd.nodes.find((n) => n !== etcd.nodes[0])!;
    await victim.kill();
    try {
      const v = await runCli(['validate', '--url', etcd.url]);
      expectCode(v, 0, 'validate with one member down');
      const line = reportLines(v, 'endpoint').find((e) => e.text.startsWith(victim.clientUrl))!;
      assert.equal(line.mark, '!');
      assert.match(line.text, /cannot reach etcd at .* \(connect ECONNREFUSED .*\); backup and restore use the other members/);
      assert.equal(reportLines(v, 'endpoint').filter((e) => e.mark === '✓').length, 2);

      const only = await runCli(['validate', '--url', victim.clientUrl]);
      expectCode(only, 4, 'validate with the only listed member down');
      assert.equal(reportLines(only, 'endpoint')[0]?.mark, '✗');
      assert.match(only.stderr, /validation failed: endpoint/);
    } finally {
      await restart(victim);
    }
  });
});

describe('losing a member half-way', () => {
  test('backup: the leader dies mid-way; the backup continues on another member at the same revision', async (t) => {
    const leader = await leaderNode();
    const survivors = etcd.nodes.filter((n) => n !== leader).map((n) => n.clientUrl);
    let changedAt = '';
    const r = await backupWithPause(['--url', etcd.url, '--page-bytes', PAGE_BYTES], async () => {
      await leader.kill();
      // Changes after the pinned revision must not leak into the archive.
      await withClient(survivors, async (c) => {
        await c.put(key(1)).value('changed after the backup began');
        await c.delete().key(key(KEYS - 1));
        const res = await c.put('/big/zzz-new').value('new');
        changedAt = res.header.revision;
      });
    });
    try {
      expectCode(r, 0, 'backup with the leader killed');
      t.diagnostic(r.stderr.trim());
      assert.match(r.stderr, new RegExp(`warning: etcd member ${leader.clientUrl} failed .*continuing with the other members`));
      const archive = path.join(tmp, 'failover.archive');
      fs.writeFileSync(archive, r.stdout);
      const { header, records, trailer } = await readArchive(archive);
      assert.ok(header && trailer, 'complete archive: header and trailer');
      assert.ok(BigInt(header.revision) < BigInt(changedAt), 'pinned before the changes');
      assert.equal(records.size, KEYS);

      // Key by key against the cluster at the pinned revision, read from the survivors.
      const expected = await clusterAt(survivors, '/big/', header.revision);
      assert.equal(expected.size, KEYS);
      for (const [k, want] of expected) assert.deepEqual(records.get(k), want, k);
      assert.equal(records.get(key(1))!.value, valueOf(1, 'v1'));
      assert.ok(!records.has('/big/zzz-new'));
    } finally {
      await restart(leader);
    }
    const v = await runCli(['verify', '--in', path.join(tmp, 'failover.archive')]);
    expectCode(v, 0, 'verify');
  });

  test('backup: a member frozen (SIGSTOP) mid-way costs one timeout, the archive is complete', async (t) => {
    const frozen = etcd.nodes.find((n) => n.running)!;
    let resumeAt = 0;
    const r = await backupWithPause(['--url', etcd.url, '--page-bytes', PAGE_BYTES, '--timeout', '1'], async () => {
      frozen.pause();
      resumeAt = Date.now();
    });
    frozen.resume();
    expectCode(r, 0, 'backup with a frozen member');
    t.diagnostic(r.stderr.trim());
    assert.ok(resumeAt > 0);
    // Pages go to members at random and most were still to read: the frozen one timed out at least once.
    assert.match(r.stderr, new RegExp(`warning: etcd member ${frozen.clientUrl} failed`), `the backup never met the frozen member\n${describeRun(r)}`);
    const file = path.join(tmp, 'frozen.archive');
    fs.writeFileSync(file, r.stdout);
    const { header, records, trailer } = await readArchive(file);
    assert.ok(header && trailer);
    const expected = await clusterAt(etcd.endpoints, '/big/', header.revision);
    assert.equal(records.size, expected.size);
    for (const [k, want] of expected) assert.deepEqual(records.get(k), want, k);
  });

  test('backup: the only listed member dies mid-way; the backup fails clearly and its output is refused', async (t) => {
    const only = etcd.nodes[2]!;
    const r = await backupWithPause(['--url', only.clientUrl, '--page-bytes', PAGE_BYTES], () => only.kill());
    try {
      expectCode(r, 4, 'backup from a dead member');
      t.diagnostic(r.stderr.trim());
      assert.match(r.stderr, new RegExp(`cannot reach etcd at ${only.clientUrl} while trying to read`));
      assert.doesNotMatch(r.stderr, /unexpected error|backup done/);
      const partial = path.join(tmp, 'partial.archive');
      fs.writeFileSync(partial, r.stdout);
      const v = await runCli(['verify', '--in', partial]);
      assert.notEqual(v.code, 0, `a partial archive must not verify\n${describeRun(v)}`);
    } finally {
      await restart(only);
    }
  });

  test('restore: the leader dies mid-way; it completes or stops with nothing deleted early, and a re-run converges', async (t) => {
    const archive = path.join(tmp, 'restore.archive');
    expectCode(await runCli(['backup', '--url', etcd.url, '--prefix', '/big/', '--out', archive]), 0, 'backup to restore');
    const { records } = await readArchive(archive);
    // Every archived key must be written back; keys the archive lacks must go (overwrite).
    await withClient(etcd.endpoints, async (c) => {
      await c.delete().prefix('/big/');
    });
    const extras: [string, string][] = Array.from({ length: 300 }, (_, i) => [`/big/extra-${i}`, 'extra']);
    await putAll(etcd.endpoints, extras);

    const leader = await leaderNode();
    const args = ['restore', '--url', etcd.url, '--prefix', '/big/', '--overwrite', '--in', archive, '--batch-ops', '16', '--concurrency', '2'];
    const run = startCli(args);
    let finished = false;
    void run.exit.then(() => (finished = true));
    // Once a quarter of the keys are back, the restore is stopped, counted and
    // the leader killed: with keys still to write, it must carry on without it.
    let killedAt = -1;
    const survivors = etcd.nodes.filter((n) => n !== leader).map((n) => n.clientUrl);
    while (!finished && killedAt < 0) {
      const n = await withClient(survivors, async (c) => c.getAll().prefix('/big/0').count());
      if (n >= KEYS / 4) {
        run.child.kill('SIGSTOP');
        killedAt = await withClient(survivors, async (c) => c.getAll().prefix('/big/0').count());
        await leader.kill();
        run.child.kill('SIGCONT');
      } else {
        await new Promise((r) => setTimeout(r, 25));
      }
    }
    const first = await run.exit;
    try {
      // At most two transactions of 16 were in flight when it was stopped.
      assert.ok(killedAt >= 0 && killedAt + 2 * 16 < records.size, `the leader did not die while keys were left to write (at ${killedAt})\n${describeRun(first)}`);
      const now = await clusterAt(survivors, '/big/');
      const extrasLeft = extras.filter(([k]) => now.has(k)).length;
      const written = [...records].filter(([k, want]) => now.get(k)?.value === want.value).length;
      t.diagnostic(`leader killed at ${killedAt} keys; first run exit ${first.code}, ${written} written, ${extrasLeft} extras left\n${first.stderr.trim()}`);
      if (first.code === 0) {
        assert.equal(extrasLeft, 0, 'overwrite removed the extra keys');
        assert.equal(written, records.size);
      } else {
        assert.equal(first.code, 4, describeRun(first));
        assert.match(first.stderr, /restore stopped after writing at least \d+ keys and deleting \d+/);
        // Deleting starts only once every archived key is written.
        if (extrasLeft < extras.length) assert.equal(written, records.size, 'keys deleted before the archive was fully written');
      }

      // The member is still down: the re-run converges on the two survivors.
      const again = await runCli(args);
      expectCode(again, 0, 're-run');
      const final = await clusterAt(survivors, '/big/');
      assert.equal(final.size, records.size);
      for (const [k, want] of records) assert.equal(final.get(k)?.value, want.value, k);
    } finally {
      await restart(leader);
    }
    // The restarted member caught up as well.
    const fromIt = await clusterAt([leader.clientUrl], '/big/');
    assert.equal(fromIt.size, records.size);
  });
});
