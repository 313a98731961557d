// etcd's "too many requests" overload, against a real etcd (issue 5): a restore
// that meets it says so, backs off and completes; one that meets it for longer
// than it retries fails clearly, having deleted nothing; a re-run converges.
//
// etcd 3.4 refuses every proposal with "etcdserver: too many requests" while
// its committed index is more than 5000 entries ahead of its applied index.
// A defragmentation holds the backend lock that apply needs, while raft goes on
// committing; with three of them queued at all times apply gets (almost) no
// turn, and a flood of single puts then opens the gap. Nothing here waits for
// time to pass: the restore is SIGSTOPped at its first key, resumed once etcd
// has refused a put of the flood, and the overload is lifted once etcd-shield
// has said it met it (or, in the second test, once it has given up).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Etcd3 } from 'etcd3';
import { resolveConfig } from '../src/config/config';
import { isOverloaded } from '../src/etcd/classify';
import { connect } from '../src/etcd/connect';
import { ExitCode } from '../src/errors';
import { assertNoCrash, describeRun, expectCode, killStartedClis, runCli, startCli, type CliResult } from './cli';
import { putMany } from './etcd-data';
import { restoreStoppedAtFirstKey as stoppedAtFirstKey } from './fault-points';
import { startEtcd, type EtcdCluster } from './harness';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** What etcd-shield prints, once, when etcd refuses it with "too many requests". */
const OVERLOAD_WARNING = /^warning: etcd is overloaded \(too many requests.*retrying in \d+ ms/m;

// Ballast makes each defragmentation long enough (a few tenths of a second) that the
// queued ones starve apply; fewer keys or fewer defragmentations let apply
// creep on between them and the gap close.
const BALLAST_KEYS = 30_000;
const DEFRAGS_AT_ONCE = 3;
// More than etcd's limit of 5000 unapplied entries, all in flight at once.
const FIRST_WAVE = 5500;
const MAX_FLOOD = 100_000;

interface Overload {
  /** Puts of the flood that etcd refused with "too many requests". */
  refused(): number;
  /** Stops the defragmentations and the flood, and waits until etcd has answered every put. */
  lift(): Promise<void>;
}

/** Overloads etcd; resolves once etcd has refused one of the flood's puts. */
async function overload(url: string): Promise<Overload> {
  // No retries, no circuit breaker: every put reaches etcd and every refusal is seen.
  const conn = connect(resolveConfig({ url, timeout: '60' }).config, undefined, { retry: false });
  const c = conn.client;
  let on = true;
  let refused = 0;
  let sent = 0;
  const answers: Promise<unknown>[] = [];
  const put = () =>
    answers.push(
      // Accepted puts that wait on apply longer than etcd's request timeout come back as "request timed out".
      c.kv.put({ key: Buffer.from(`/flood/${sent++ % 10_000}`), value: Buffer.from('x') }).catch((err: unknown) => {
        if (isOverloaded(err)) refused++;
      }),
    );
  const defrags = Array.from({ length: DEFRAGS_AT_ONCE }, async () => {
    while (on) await c.maintenance.defragment();
  });
  let topUp: Promise<void> = Promise.resolve();
  const lift = async () => {
    on = false;
    await Promise.all([...defrags, topUp]);
    await Promise.all(answers);
    conn.close();
  };
  try {
    for (let i = 0; i < FIRST_WAVE; i++) put();
    // The first wave is proposed before it is committed; later puts find the gap.
    while (refused === 0) {
      if (sent > MAX_FLOOD) throw new Error(`etcd refused none of ${sent} puts made while it defragmented: no overload to test`);
      for (let i = 0; i < 100; i++) put();
      await sleep(20);
    }
    // Whatever apply still gets done is made up for, so the gap stays open until lifted.
    topUp = (async () => {
      while (on) {
        for (let i = 0; i < 20; i++) put();
        await sleep(50);
      }
    })();
  } catch (err) {
    await lift();
    throw err;
  }
  return { refused: () => refused, lift };
}

// ---------------------------------------------------------------------------
// One etcd for the file: ballast for the defragmentations, and an archive of
// /ov/ taken by a real backup.

const KEYS = 10_000;
let cluster: EtcdCluster;
let client: Etcd3;
let tmp: string;
let archive: string;
let expected: Record<string, Buffer>;
// Slow enough that the restore is still writing when it is stopped at its first key.
const restoreArgs = () => ['restore', '--endpoints', cluster.url, '--prefix', '/ov/', '--overwrite', '--in', archive, '--concurrency', '2', '--batch-ops', '8'];

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-shield-overload-'));
  cluster = await startEtcd({});
  client = new Etcd3({ hosts: cluster.url });
  await putMany(client, Array.from({ length: BALLAST_KEYS }, (_, i) => ({ key: Buffer.from(`/ballast/${String(i).padStart(6, '0')}`), value: Buffer.alloc(1024, 'b') })));
  await putMany(client, Array.from({ length: KEYS }, (_, i) => ({ key: Buffer.from(`/ov/k${String(i).padStart(5, '0')}`), value: Buffer.from(`archived ${i}`) })));
  archive = path.join(tmp, 'ov.archive');
  const b = await runCli(['backup', '--endpoints', cluster.url, '--prefix', '/ov/', '--out', archive]);
  expectCode(b, 0, 'backup of /ov/');
  expected = await client.getAll().prefix('/ov/').buffers();
});

after(async () => {
  killStartedClis();
  client?.close();
  await cluster?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** /ov/ emptied, plus 20 keys the archive lacks (overwrite deletes them, last). */
async function drift(): Promise<void> {
  await client.delete().prefix('/ov/');
  for (let i = 0; i < 20; i++) await client.put(`/ov/extra-${i}`).value('not in the archive');
}

/** Starts the restore and SIGSTOPs it as soon as its first key is in etcd (at most two transactions of 8 can still land). */
const restoreStoppedAtFirstKey = () => stoppedAtFirstKey(client, '/ov/k', KEYS, 2 * 8 + 1, () => startCli(restoreArgs()));

const warnings = (stderr: string) => stderr.split('\n').filter((l) => OVERLOAD_WARNING.test(l)).length;

test('etcd overloaded (too many requests) mid-restore: etcd-shield says so once, backs off, and the restore completes', { timeout: 120_000 }, async (t) => {
  await drift();
  const run = await restoreStoppedAtFirstKey();
  const load = await overload(cluster.url);
  let lifted = false;
  try {
    run.child.kill('SIGCONT');
    // Resolves on the warning, or when the restore exits without one (asserted below).
    await run.waitStderr(OVERLOAD_WARNING);
    await load.lift();
    lifted = true;
  } finally {
    run.child.kill('SIGCONT');
    if (!lifted) await load.lift();
  }
  const r = await run.exit;
  const context = `restore through an overload\n${describeRun(r)}`;
  t.diagnostic(`etcd refused ${load.refused()} puts of the flood`);
  expectCode(r, 0, context);
  assert.equal(warnings(r.stderr), 1, `${context}: etcd-shield did not say once that etcd was overloaded`);
  assert.deepEqual(await client.getAll().prefix('/ov/').buffers(), expected, `${context}: /ov/ is not the archive`);
});

test('etcd overloaded for longer than etcd-shield retries: exit 4 saying so, nothing deleted; a re-run converges', { timeout: 120_000 }, async (t) => {
  await drift();
  const run = await restoreStoppedAtFirstKey();
  const load = await overload(cluster.url);
  let r: CliResult;
  try {
    run.child.kill('SIGCONT');
    r = await run.exit;
  } finally {
    run.child.kill('SIGCONT');
    await load.lift();
  }
  const context = `restore through an overload that does not end\n${describeRun(r)}`;
  t.diagnostic(`etcd refused ${load.refused()} puts of the flood`);
  assert.equal(r.code, ExitCode.failure, context);
  assertNoCrash(r, context);
  assert.equal(warnings(r.stderr), 1, `${context}: etcd-shield did not say once that etcd was overloaded`);
  assert.match(r.stderr, /^etcd-shield: etcd at \S+ is overloaded and refused to write keys under prefix "\/ov\/" \(etcdserver: too many requests\)/m, context);
  assert.match(r.stderr, /^ {2}what to do: wait until etcd catches up/m, context);
  assert.match(r.stderr, /restore stopped after writing at least \d+ keys and deleting 0/, context);

  // Nothing lost: the keys the archive lacks are still there (overwrite deletes only after every write),
  // and every key the restore did write holds its archived value.
  const now = await client.getAll().prefix('/ov/').buffers();
  for (let i = 0; i < 20; i++) assert.ok(now[`/ov/extra-${i}`], `${context}: /ov/extra-${i} was deleted by a failed restore`);
  for (const [k, v] of Object.entries(now)) {
    if (!k.startsWith('/ov/extra-')) assert.deepEqual(v, expected[k], `${context}: ${k} holds a value from nowhere`);
  }

  const again = await runCli(restoreArgs(), { timeoutMs: 120_000 });
  expectCode(again, 0, 'the re-run after the overload');
  assert.deepEqual(await client.getAll().prefix('/ov/').buffers(), expected, 'the re-run did not converge to the archive');
});
