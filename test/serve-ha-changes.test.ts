// The change log with several instances: two real `serve` processes run one
// config with `changes` and `ha`, against real etcd and one directory store.
// Only the leader follows; SIGKILLed under a continuous writer, the other
// instance leads and continues the log where the stored log ends; the log is
// then one window whose events are exactly the writes, and restores to the
// last revision and to one written after the kill equal etcd at that revision.
import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Etcd3 } from 'etcd3';
import { chainFrom, readChangeCatalogue } from '../src/changes/chain';
import { SegmentFetcher } from '../src/changes/fetch-segment';
import { EventView } from '../src/changes/segment-decode';
import { openStore } from '../src/store/open';
import { describeRun, expectCode, runCli } from './cli';
import { type EtcdPair, startEtcdPair } from './etcd-pair';
import { type LogLine, type ServeProcess, startServe } from './serve-harness';

const PREFIX = '/app/';
const JOB = 'logged';
const TTL = 2;
/** Generous: a loaded machine may be slow; the test asserts order and mechanism, not speed. */
const PATIENCE_MS = 30_000;

let pair: EtcdPair;
const running: ServeProcess[] = [];
let writer: Writer | undefined;

before(async () => {
  pair = await startEtcdPair();
});

after(async () => {
  await writer?.stop().catch(() => undefined);
  await Promise.all(running.map((s) => s.stop(5000)));
  await pair?.close();
});

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, ms = PATIENCE_MS): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) assert.fail(`timed out after ${ms} ms waiting for: ${what}`);
    await sleep(100);
  }
}

/**
 * Puts, updates (some under a lease) and deletes under the prefix from a few
 * concurrent workers until stopped; records the revision of every write that
 * made one (a delete of a missing key makes none).
 */
class Writer {
  /** Revisions made, in the order their replies came. */
  readonly revisions: number[] = [];
  /** The highest revision made so far. */
  last = 0;
  private stopping = false;
  private readonly workers: Promise<void>[];

  constructor(
    private readonly client: Etcd3,
    private readonly lease: string,
    concurrency = 4,
  ) {
    // A failed write stops all workers; stop() then rejects with it.
    this.workers = Array.from({ length: concurrency }, (_, w) =>
      this.work(w).catch((err: unknown) => {
        this.stopping = true;
        throw err;
      }),
    );
    for (const w of this.workers) w.catch(() => undefined);
  }

  private async work(w: number): Promise<void> {
    for (let i = 0; !this.stopping; i++) {
      const key = Buffer.from(`${PREFIX}k${(i * 7 + w * 13) % 60}`);
      const op = (i + w) % 6;
      if (op === 5) {
        const r = await this.client.kv.deleteRange({ key });
        if (r.deleted !== '0') this.made(r.header.revision);
      } else {
        const value = Buffer.from(`w${w}.${i}`);
        const r = await this.client.kv.put(op === 4 ? { key, value, lease: this.lease } : { key, value });
        this.made(r.header.revision);
      }
    }
  }

  private made(revision: string): void {
    this.revisions.push(Number(revision));
    this.last = Math.max(this.last, Number(revision));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.workers);
  }
}

type Content = [string, string, string][];

async function contentAt(c: Etcd3, revision?: number): Promise<Content> {
  const r = await c.kv.range({ key: Buffer.from(PREFIX), range_end: Buffer.from('/app0'), ...(revision ? { revision: String(revision) } : {}) });
  return r.kvs.map((kv) => [kv.key.toString(), kv.value.toString(), kv.lease]);
}

interface ChangesJson {
  running: boolean;
  coveredRevision?: string;
  segments: number;
  gaps: number;
}

async function api(s: ServeProcess): Promise<{ leader: boolean; changes: ChangesJson }> {
  const body = (await (await fetch(`${s.url}/api/jobs`)).json()) as { role: { leader: boolean }; jobs: { name: string; changes?: ChangesJson }[] };
  const job = body.jobs.find((j) => j.name === JOB);
  assert.ok(job?.changes, `the job shows its change log: ${JSON.stringify(body)}`);
  return { leader: body.role.leader, changes: job.changes };
}

async function following(s: ServeProcess): Promise<number> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const m = /^etcd_shield_changes_following\{job="logged"\} (\d)$/m.exec(text);
  assert.ok(m, `the metric etcd_shield_changes_following is there:\n${text}`);
  return Number(m[1]);
}

const covered = (c: ChangesJson) => Number(c.coveredRevision ?? 0);
const leads = (l: LogLine) => l.event === 'role' && l.leader === true;
const storedSegments = (s: ServeProcess) => s.logs().filter((l) => l.event === 'segment').map((l) => String(l.segment));

test('two instances, changes on: only the leader follows; SIGKILLed under load, the other continues the log where it ends; one window, every write once, restores exact', { timeout: 180_000 }, async () => {
  const { source, target, src, dst, dir } = pair;
  const lease = (await src.leaseClient.leaseGrant({ TTL: 600, ID: '0' })).ID;
  for (let i = 0; i < 60; i++) await src.put(`${PREFIX}k${i}`).value(`seed ${i}`);
  const store = join(dir, 'store');
  // A backup first: the log starts after it, and the new leader has no catch-up backup to take.
  const b = await runCli(['backup', '--endpoints', source.url, '--prefix', PREFIX, '--to', store]);
  expectCode(b, 0, 'backup');
  const backupRevision = Number((await src.get('nothing').exec()).header.revision);

  const config = (port: number) =>
    [
      `listen: 127.0.0.1:${port}`,
      `ha: { election: /etcd-shield/serve-ha-changes, ttl: ${TTL} }`,
      'jobs:',
      `  - name: ${JOB}`,
      `    etcd: { url: "${source.url}", timeout: "5" }`,
      `    prefix: ${PREFIX}`,
      '    to: ./store',
      '    schedule: "0 0 1 1 *"',
      '    changes: { flush: 1s }',
      '',
    ].join('\n');
  // --debug: each stored segment is logged, so the test knows which instance wrote it.
  const a = await startServe({ config, dir, args: ['--debug'] });
  running.push(a);
  const c = await startServe({ config, dir, args: ['--debug'] });
  running.push(c);
  const leader = await until('one instance leads', () => [a, c].find((s) => s.logs().some(leads)));
  const other = leader === a ? c : a;
  await leader.waitForLog((l) => l.event === 'changes-from', 'the leader to start its change log');
  assert.equal(leader.logs().find((l) => l.event === 'changes-from')!.from, backupRevision + 1, 'the log starts after the backup');

  writer = new Writer(src, lease);
  // The leader follows and has stored segments with the writer's events.
  const firstWrite = await until('a first write', () => writer!.revisions[0]);
  await until('the leader stores a segment with writes', async () => covered((await api(leader)).changes) >= firstWrite);
  const seen = await api(leader);
  assert.ok(seen.leader && seen.changes.running && seen.changes.segments >= 1, JSON.stringify(seen));
  const idle = await api(other);
  assert.deepEqual([idle.leader, idle.changes.running, idle.changes.segments], [false, false, 0], JSON.stringify(idle));
  assert.deepEqual([await following(leader), await following(other)], [1, 0]);
  // Every segment in the store so far is one the leader logged (it logs right after storing).
  const before = (await readChangeCatalogue(openStore(store, { cwd: '/' }))).segments.map((s) => s.object.key);
  assert.ok(before.length >= 1);
  await until('the leader logs every stored segment', () => before.every((k) => storedSegments(leader).includes(k)));
  assert.ok(!other.logs().some((l) => l.event === 'changes-start' || l.event === 'segment'), 'the other instance never followed');

  // Killed mid-load: whatever it received but had not stored is lost with it.
  const writesAtKill = writer.revisions.length;
  const lastAtKill = writer.last;
  leader.signal('SIGKILL');
  assert.equal((await leader.exited).signal, 'SIGKILL', 'the leader was killed');
  const catalogue = await readChangeCatalogue(openStore(store, { cwd: '/' }));
  const storedChain = chainFrom(catalogue.segments, backupRevision);
  assert.equal(storedChain.length, catalogue.segments.length, 'the stored segments are one chain');
  const storedEnd = storedChain[storedChain.length - 1]!.last;

  // The other leads and continues from the revision after the stored log's end.
  await other.waitForLog(leads, 'the other instance to lead', TTL * 1000 + PATIENCE_MS);
  const from = await other.waitForLog((l) => l.event === 'changes-from', 'the new leader to start its change log');
  assert.equal(from.from, storedEnd + 1, `the new leader continues after the stored log (r${storedEnd})`);
  const took = await api(other);
  assert.ok(took.leader && took.changes.running, JSON.stringify(took));
  assert.equal(await following(other), 1);
  assert.ok(writer.revisions.length > writesAtKill && writer.last > lastAtKill, 'writes went on after the kill');

  // A revision written after the kill, once the new leader follows; then the load stops.
  const afterKill = await until('a write after the kill', () => writer!.last > lastAtKill && writer!.last);
  await until('the new leader stores past that write', async () => covered((await api(other)).changes) >= afterKill);
  await writer.stop();
  const last = writer.last;
  assert.equal(last, Math.max(...writer.revisions));
  await until(`the new leader's log reaches the last write (r${last})`, async () => covered((await api(other)).changes) >= last);
  const newSegments = storedSegments(other);
  assert.ok(newSegments.length >= 1 && newSegments.every((k) => !storedChain.some((s) => s.object.key === k)), 'the new leader stored segments of its own');
  await other.stop();
  assert.equal((await other.exited).code, 0, other.stderr().slice(-2000));

  // One recoverable window, from the backup through the last write, no gap.
  const listed = await runCli(['list', '--from', store, '--json']);
  expectCode(listed, 0, 'list');
  const l = JSON.parse(listed.stdout.toString()) as { windows: { fromRevision: number; toRevision: number }[]; changes: { segments: number; gaps: string[] } };
  assert.deepEqual(l.changes.gaps, [], describeRun(listed));
  assert.equal(l.windows.length, 1, JSON.stringify(l.windows));
  assert.equal(l.windows[0]!.fromRevision, backupRevision);
  assert.ok(l.windows[0]!.toRevision >= last, JSON.stringify(l.windows));

  // The chain: each segment starts where the previous ended, and its events are exactly the writes, once each.
  const all = (await readChangeCatalogue(openStore(store, { cwd: '/' }))).segments;
  const chain = chainFrom(all, backupRevision);
  assert.equal(chain.length, all.length, `every segment is on the chain: ${all.map((s) => s.object.key).join(', ')}`);
  chain.forEach((s, i) => assert.equal(s.first, i === 0 ? backupRevision + 1 : chain[i - 1]!.last + 1, s.object.key));
  const fetcher = new SegmentFetcher(openStore(store, { cwd: '/' }), []);
  const recorded: number[] = [];
  for (const s of chain) {
    const seg = await fetcher.fetch(s);
    const view = new EventView(seg.data);
    for (const at of seg.events) recorded.push(view.at(at).modRevision);
  }
  const written = [...writer.revisions].sort((x, y) => x - y);
  assert.equal(recorded.length, written.length, `${recorded.length} events recorded for ${written.length} writes`);
  assert.deepEqual(recorded, written, 'every write is in the log once, in revision order');

  const v = await runCli(['verify', '--from', store]);
  expectCode(v, 0, 'verify');
  assert.match(v.stderr, new RegExp(`change log: ${chain.length} segments intact \\(${written.length} events\\)`), describeRun(v));

  for (const rev of [afterKill, last]) {
    await dst.kv.deleteRange({ key: Buffer.from([0]), range_end: Buffer.from([0]) });
    for (const x of (await dst.leaseClient.leaseLeases()).leases) await dst.leaseClient.leaseRevoke({ ID: x.ID });
    const r = await runCli(['restore', '--endpoints', target.url, '--from', store, '--to-revision', String(rev), '--prefix', PREFIX, '--overwrite']);
    expectCode(r, 0, `restore to r${rev}`);
    assert.deepEqual(await contentAt(dst), await contentAt(src, rev), `restore --to-revision ${rev}: ${describeRun(r)}`);
  }
  console.log(`${written.length} writes; killed at r${lastAtKill}, stored log ended at r${storedEnd}, new leader from r${from.from as number}; restored r${afterKill} and r${last}`);
});
