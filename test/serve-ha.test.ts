// Several instances, one leader: ElectedRole against a real etcd, then (once
// the runtime exists) real `serve` processes sharing one store.
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import pino from 'pino';
import { resolveConfig } from '../src/config/config';
import { connect } from '../src/etcd/connect';
import { loadServiceConfig } from '../src/service/config';
import { ElectedRole, electedRole } from '../src/service/leadership';
import { childEnv } from './cli';
import { listBackups } from '../src/api/catalogue';
import { makeTestDir, removeTestDir, startEtcd, track, type EtcdCluster } from './harness';
import { startServe, type LogLine, type ServeProcess } from './serve-harness';

const TTL = 2;
/** Generous: a loaded machine may be slow; the tests assert order and mechanism, not speed. */
const PATIENCE_MS = 20_000;

interface Candidate {
  name: string;
  role: ElectedRole;
  close(): void;
  /** Every onChange, in order. */
  changes: boolean[];
  logs: Record<string, unknown>[];
}

/** Shared across candidates: what happened, in the order it happened. */
let events: string[] = [];

function logger(into: Record<string, unknown>[]): pino.Logger {
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) into.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return pino({ level: 'debug' }, sink);
}

async function candidate(cluster: EtcdCluster, name: string, election: string, ttl = TTL): Promise<Candidate> {
  const connection = connect(resolveConfig({ url: cluster.url, timeout: '2' }).config);
  const logs: Record<string, unknown>[] = [];
  const role = new ElectedRole({ connection, election, ttl, logger: logger(logs), instance: name });
  const c: Candidate = { name, role, close: () => connection.close(), changes: [], logs };
  await role.start((leader) => {
    c.changes.push(leader);
    events.push(`${name} ${leader ? 'leads' : 'follows'}`);
  });
  return c;
}

async function until<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, ms = PATIENCE_MS): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) assert.fail(`timed out waiting for: ${what}\nevents: ${events.join(', ')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The candidates' keys in etcd, oldest first: etcd3 keeps them under election/KEY/. */
async function candidateKeys(client: Etcd3, election: string): Promise<string[]> {
  return client.getAll().prefix(`election/${election}/`).sort('Create', 'Ascend').keys();
}

// One etcd for all: each test campaigns on an election key of its own.
let cluster: EtcdCluster;
/** A client of the test's own, to look at the candidates' keys. */
let observer: Etcd3;
before(async () => {
  cluster = await startEtcd();
  observer = new Etcd3({ hosts: cluster.endpoints });
});
after(async () => {
  observer?.close();
  await cluster?.stop();
});

describe('ElectedRole: two candidates in one process, one etcd', () => {
  const running: Candidate[] = [];
  let seq = 0;

  after(() => Promise.all(running.map((c) => c.role.stop())));

  async function pair(ttl = TTL): Promise<{ election: string; a: Candidate; b: Candidate }> {
    events = [];
    const election = `/ha-test/${++seq}`;
    const a = await candidate(cluster, 'a', election, ttl);
    const b = await candidate(cluster, 'b', election, ttl);
    running.push(a, b);
    return { election, a, b };
  }

  const leaders = (...cs: Candidate[]) => cs.filter((c) => c.role.isLeader());

  test('exactly one leads, and stays the only leader over several lease periods; the follower knows who leads', async () => {
    // A 3 s lease: a 2 s stall of this busy test process would make a leader step down, rightly.
    const { election, a, b } = await pair(3);
    const [leader] = await until('a leader', () => leaders(a, b).length > 0 && leaders(a, b));
    const follower = leader === a ? b : a;
    // Several TTLs: the leader's keep-alives must hold, and nobody else may lead meanwhile.
    const end = Date.now() + 3 * TTL * 1000;
    while (Date.now() < end) {
      assert.deepEqual(leaders(a, b).map((c) => c.name), [leader!.name]);
      await sleep(100);
    }
    assert.deepEqual(leader!.changes, [true], 'the leader never stepped down');
    assert.deepEqual(follower.changes, [], 'the follower never led');
    assert.deepEqual(follower.role.view(), { leader: false, ha: true, instance: follower.name, election, leaderInstance: leader!.name });
    assert.deepEqual(leader!.role.view(), { leader: true, ha: true, instance: leader!.name, election, leaderInstance: leader!.name });
    assert.equal((await candidateKeys(observer, election)).length, 2, 'both candidates have a key');
    assert.ok(leader!.logs.some((l) => l.event === 'leader' && l.instance === leader!.name && l.election === election));
  });

  test('stop() of the leader resigns: its key is gone at once and the other leads, long before the lease could expire', async () => {
    const { election, a, b } = await pair(60);
    const [leader] = await until('a leader', () => leaders(a, b).length > 0 && leaders(a, b));
    const follower = leader === a ? b : a;
    const before = await candidateKeys(observer, election);
    assert.equal(before.length, 2);
    await leader!.role.stop();
    // With a 60 s lease, the key can only be gone because stop() revoked it.
    assert.deepEqual(await candidateKeys(observer, election), before.slice(1), 'the leader key was deleted by resigning');
    await until('the follower leads', () => follower.role.isLeader());
    assert.equal(leader!.role.isLeader(), false);
    assert.deepEqual(events, [`${leader!.name} leads`, `${follower.name} leads`]);
  });

  test('etcd frozen (a partition): the leader steps down, both keep trying without crashing, one leads again after', async () => {
    const { a, b } = await pair();
    const [leader] = await until('a leader', () => leaders(a, b).length > 0 && leaders(a, b));
    const node = cluster.nodes[0]!;
    node.pause();
    try {
      await until('the leader steps down', () => leader!.changes.includes(false), TTL * 1000 + PATIENCE_MS);
      assert.deepEqual(leaders(a, b), []);
      // Stay down a while, so both candidates meet failing requests and retry.
      await until('a failed campaign is logged', () => [a, b].some((c) => c.logs.some((l) => l.event === 'election-error')), PATIENCE_MS);
    } finally {
      node.resume();
    }
    await until('someone leads again', () => leaders(a, b).length > 0, PATIENCE_MS * 2);
    await sleep(TTL * 1000);
    assert.equal(leaders(a, b).length, 1, events.join(', '));
  });
});

/** A candidate in a process of its own (test/ha-candidate.ts): it can really die or freeze. */
interface Process_ {
  name: string;
  child: ChildProcess;
  logs: Record<string, unknown>[];
  exited: Promise<NodeJS.Signals | number | null>;
}

function candidateProcess(cluster: EtcdCluster, name: string, election: string): Process_ {
  const child = spawn(process.execPath, [join(__dirname, 'ha-candidate.js'), cluster.url, election, String(TTL), name], { env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  const logs: Record<string, unknown>[] = [];
  let rest = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    const lines = (rest + chunk.toString()).split('\n');
    rest = lines.pop()!;
    for (const line of lines.filter(Boolean)) {
      const entry = JSON.parse(line) as Record<string, unknown>;
      logs.push(entry);
      if (entry.event === 'leader' || entry.event === 'follower') events.push(`${name} ${entry.event === 'leader' ? 'leads' : 'follows'}`);
    }
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
  void exited.then((how) => how !== 'SIGKILL' && how !== 0 && stderr && events.push(`${name} exited ${how}: ${stderr}`));
  return { name, child, logs, exited };
}

const leads = (p: Process_) => p.logs.filter((l) => l.event === 'leader').length;

describe('ElectedRole: candidates in processes of their own', () => {
  const procs: Process_[] = [];
  let seq = 0;

  after(async () => {
    for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await Promise.all(procs.map((p) => p.exited));
  });

  async function pair(): Promise<{ election: string; leader: Process_; follower: Process_ }> {
    events = [];
    const election = `/ha-proc-test/${++seq}`;
    const a = candidateProcess(cluster, 'a', election);
    const b = candidateProcess(cluster, 'b', election);
    procs.push(a, b);
    const leader = await until('a leader', () => [a, b].find((p) => leads(p) > 0));
    const follower = leader === a ? b : a;
    await until('both candidates have a key', async () => (await candidateKeys(observer, election)).length === 2);
    return { election, leader, follower };
  }

  test('the leader is SIGKILLed: its key stays until the lease expires, then the other leads', async () => {
    const { election, leader, follower } = await pair();
    const keys = await candidateKeys(observer, election);
    leader.child.kill('SIGKILL');
    assert.equal(await leader.exited, 'SIGKILL', 'the leader process was killed');
    // The fault hit: nobody resigned, so the dead leader's key is still the oldest.
    assert.deepEqual(await candidateKeys(observer, election), keys);
    await until('the follower leads', () => leads(follower) > 0, TTL * 1000 + PATIENCE_MS);
    assert.deepEqual(await candidateKeys(observer, election), keys.slice(1), 'the dead leader key expired with its lease');
    assert.deepEqual(events, [`${leader.name} leads`, `${follower.name} leads`]);
  });

  test('the leader is frozen (SIGSTOP, as in a partition): the other leads; thawed, the old leader steps down and does not lead again', async () => {
    const { election, leader, follower } = await pair();
    const keys = await candidateKeys(observer, election);
    leader.child.kill('SIGSTOP');
    try {
      await until('the follower leads', () => leads(follower) > 0, TTL * 1000 + PATIENCE_MS);
      // The fault hit: the frozen leader kept no keep-alives going, so its key expired.
      assert.ok(!(await candidateKeys(observer, election)).includes(keys[0]!), 'the frozen leader key expired');
    } finally {
      leader.child.kill('SIGCONT');
    }
    await until('the thawed leader steps down', () => leader.logs.some((l) => l.event === 'follower'));
    const stepDown = leader.logs.find((l) => l.event === 'follower')!;
    assert.match(String(stepDown.reason), /keep-alive|lease|expired|not found/i);
    // Several TTLs: the thawed instance campaigns again but only follows.
    await sleep(3 * TTL * 1000);
    assert.equal(leads(leader), 1, events.join(', '));
    assert.equal(leads(follower), 1, events.join(', '));
    assert.equal(leader.child.exitCode, null, 'the thawed instance is still running');
  });
});

/** Seconds between ticks of the schedule below; every tick second is a multiple of it. */
const TICK = 3;
const tickOf = (time: string | Date) => Math.floor(new Date(time).getTime() / (TICK * 1000));

describe('two real serve processes, one config, one directory store', () => {
  let dir: string;
  const running: ServeProcess[] = [];

  before(async () => {
    dir = makeTestDir();
    for (let i = 0; i < 20; i++) await cluster.etcdctl(['put', `/app/k${i}`, `v${i}`], { check: true });
  });
  after(async () => {
    await Promise.all(running.map((s) => s.stop(5000)));
    if (dir) await removeTestDir(dir);
  });

  const config = (port: number) =>
    [
      `listen: 127.0.0.1:${port}`,
      `ha: { election: /etcd-shield/serve-ha-test, ttl: ${TTL} }`,
      'jobs:',
      '  - name: main',
      `    etcd: { url: "${cluster.url}", timeout: "5" }`,
      '    prefix: /app/',
      '    to: ./store',
      `    schedule: "*/${TICK} * * * * *"`,
      '',
    ].join('\n');

  /** Scheduled backups that succeeded, as the process logged them: tick, backup name. */
  const scheduled = (s: ServeProcess) => s.logs().filter((l) => l.event === 'end' && l.status === 'succeeded' && l.trigger === 'schedule' && l.kind === 'backup');
  const startOf = (s: ServeProcess, end: LogLine) => s.logs().find((l) => l.event === 'start' && l.run === end.run)!;
  const isLeader = (l: LogLine) => l.event === 'leader';

  test('each tick makes exactly one backup; the leader SIGKILLed, the other takes over within the TTL and a tick, and each tick again makes one', async () => {
    const a = await startServe({ config, dir });
    running.push(a);
    const b = await startServe({ config, dir });
    running.push(b);
    const leader = await until('one instance leads', () => [a, b].find((s) => s.logs().some(isLeader)), PATIENCE_MS);
    const follower = leader === a ? b : a;
    await leader.waitForCount((l) => scheduled(leader).includes(l), 3, '3 scheduled backups by the leader', 10 * TICK * 1000 + PATIENCE_MS);
    assert.ok(!follower.logs().some(isLeader), 'the follower never led');
    assert.ok(!follower.logs().some((l) => l.event === 'start'), 'the follower ran nothing');

    leader.signal('SIGKILL');
    const killedAt = Date.now();
    assert.equal((await leader.exited).signal, 'SIGKILL', 'the leader process was killed');
    const before = scheduled(leader).length;
    const took = await follower.waitForLog(isLeader, 'the follower to lead', TTL * 1000 + TICK * 1000 + PATIENCE_MS);
    const takeoverMs = new Date(took.time).getTime() - killedAt;
    await follower.waitForCount((l) => scheduled(follower).includes(l), 3, '3 scheduled backups by the new leader', 10 * TICK * 1000 + PATIENCE_MS);
    await follower.stop();
    assert.equal((await follower.exited).code, 0, follower.stderr());

    // The store is the truth: every backup in it was logged by exactly one process.
    const stored = (await listBackups(join(dir, 'store'))).backups.map((x) => x.name);
    const logged = [a, b].flatMap((s) => s.logs().filter((l) => l.event === 'end' && l.status === 'succeeded').map((l) => ({ s, l })));
    assert.deepEqual([...stored].sort(), logged.map(({ l }) => String(l.backup)).sort(), 'each stored backup was made once, by one instance');
    // Scheduled backups per tick, across both processes.
    const perTick = new Map<number, string[]>();
    for (const { s, l } of logged.filter(({ l }) => l.trigger === 'schedule')) {
      const t = tickOf(startOf(s, l).time);
      perTick.set(t, [...(perTick.get(t) ?? []), `${s === a ? 'a' : 'b'}:${String(l.backup)}`]);
    }
    const doubled = [...perTick].filter(([, names]) => names.length > 1);
    assert.deepEqual(doubled, [], 'no tick made two backups');
    const ticksOf = (s: ServeProcess) => scheduled(s).map((l) => tickOf(startOf(s, l).time));
    const consecutive = (ts: number[]) => ts.every((t, i) => i === 0 || t === ts[i - 1]! + 1);
    assert.ok(consecutive(ticksOf(leader)), `the first leader made one backup on every tick: ${ticksOf(leader).join(', ')}`);
    assert.ok(consecutive(ticksOf(follower)), `the new leader made one backup on every tick: ${ticksOf(follower).join(', ')}`);
    assert.equal(scheduled(leader).length, before, 'nothing more from the dead leader');
    // The new leader's schedule runs from the first tick after it was elected (unless that tick found
    // the catch-up backup of its election still running: then it logged a skip).
    const skipped = follower.logs().filter((l) => l.event === 'skip').map((l) => tickOf(l.time));
    const firstTick = tickOf(took.time) + 1;
    assert.ok(ticksOf(follower)[0] === firstTick || (ticksOf(follower)[0] === firstTick + 1 && skipped.includes(firstTick)), `elected in tick ${tickOf(took.time)}, first backup in ${ticksOf(follower)[0]}, skips ${skipped.join(', ')}`);
    console.log(`takeover ${(takeoverMs / 1000).toFixed(1)} s after the SIGKILL (TTL ${TTL} s, tick ${TICK} s)`);
  });
});

describe('ha on an etcd with users (RBAC), through the job named by ha.job', () => {
  const PASSWORD = 'elect-Secret-4711';
  let secured: EtcdCluster;
  const roles: ElectedRole[] = [];

  before(async () => {
    secured = await startEtcd({
      rbac: {
        rootPassword: 'root-Secret-0815',
        users: [
          { name: 'backup', password: PASSWORD, readwritePrefix: '/app/' },
          { name: 'elector', password: PASSWORD, readwritePrefix: 'election/' },
        ],
      },
    });
  });
  after(async () => {
    await Promise.all(roles.map((r) => r.stop()));
    await secured?.stop();
  });

  function roleFor(user: string, logs: Record<string, unknown>[]): ElectedRole {
    const text = [
      'ha: { election: /etcd-shield/rbac, job: second, ttl: 2 }',
      'jobs:',
      '  - name: first',
      '    etcd: { url: "http://127.0.0.1:1" }',
      '    to: ./a',
      '    schedule: "0 * * * *"',
      '  - name: second',
      `    etcd: { url: "${secured.url}", timeout: "2", auth: "Role-Based Authentication", username: ${user}, password_env: PW }`,
      '    to: ./b',
      '    schedule: "0 * * * *"',
    ].join('\n');
    const config = loadServiceConfig(text, 'serve.yaml', { env: { PW: PASSWORD }, baseDir: '/tmp' });
    const role = electedRole(config.ha!, config.jobs, logger(logs));
    roles.push(role);
    return role;
  }

  test('a user without access to election/KEY/ is told what to grant, keeps trying, never leads; the password is in no log line', async () => {
    const logs: Record<string, unknown>[] = [];
    const role = roleFor('backup', logs);
    const changes: boolean[] = [];
    await role.start((l) => changes.push(l));
    const failed = await until('a failed campaign is logged', () => logs.filter((l) => l.event === 'election-error').length >= 2 && logs.filter((l) => l.event === 'election-error'));
    assert.match(String(failed[0]!.reason), /user "backup" .*election\/\/etcd-shield\/rbac\/.*permission denied/);
    assert.match(String(failed[0]!.hint), /grant-permission --prefix ROLE readwrite/);
    assert.deepEqual(changes, []);
    assert.equal(role.isLeader(), false);
    assert.ok(!JSON.stringify(logs).includes(PASSWORD), 'no password in the log');
  });

  test('a user with read-write on election/ leads, through the etcd of job "second" (the first job has no etcd)', async () => {
    const logs: Record<string, unknown>[] = [];
    const role = roleFor('elector', logs);
    await role.start(() => undefined);
    await until('it leads', () => role.isLeader());
    assert.equal(role.view().election, '/etcd-shield/rbac');
    assert.ok(!JSON.stringify(logs).includes(PASSWORD), 'no password in the log');
  });
});
