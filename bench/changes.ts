// The change log's scenario (issue 16), run by bench.ts for `--only changes`
// (and in a full run):
//  (a) follow under load: `follow --flush 5s` into a directory store while a
//      paced writer puts 1 KiB values at 1,000 puts/s; every 0.5 s the
//      segment names in the store say how far the log reaches, and the lag is
//      how long the oldest write not yet covered has waited. The follower's
//      CPU (as % of one core) and peak RSS are read from /proc.
//  (b) restore to a point: a full backup of KEYS keys, EVENTS changes after it
//      recorded by follow, then `restore --to-revision` of the last against a
//      plain `restore --backup` of the full backup, each into a fresh etcd.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Etcd3, IRequestOp } from 'etcd3';
import type { EtcdCluster } from '../test/harness';
import { parseSegmentKey } from '../src/changes/naming';
import { Dataset } from './data';
import { client, load } from './loader';
import { cpuSeconds, measure, median, type Measured, type RunSpec } from './measure';
import { emptyDir, firstLines, storedName } from './stores';

const MB = 1024 * 1024;
const SAMPLE_MS = 500;
const VALUE_BYTES = 1024;
/** Puts in flight at once: enough to keep 1,000/s on 2 shared cores, few enough to stay paced. */
const WRITER_POOL = 16;
/** Ops per transaction for the restore scenario's events (distinct keys: etcd refuses repeats in a txn). */
const EVENTS_PER_TXN = 16;

/** As bench.ts's TARGET_MIN_KEYS: below this a restore is mostly start-up, so the ratio is shown, not judged. */
const RESTORE_TARGET_MIN_KEYS = 100_000;
export const CHANGES_TARGETS = { lagOverFlushS: 1, cpuPct: 25, rssMb: 100, restoreRatio: 1.5 } as const;

export interface ChangesOptions {
  keys: number;
  events: number;
  loadSeconds: number;
  rate: number;
  flushS: number;
  runs: number;
  seed: number;
}

export interface ChangesContext {
  /** etcd-shield as the benchmark runs it. */
  shield: (args: string[]) => RunSpec;
  startEtcd: () => Promise<EtcdCluster>;
  tmp: string;
  log: (line: string) => void;
}

export interface FollowUnderLoad {
  seconds: number;
  puts: number;
  achievedRate: number;
  samples: number;
  maxLagS: number;
  p95LagS: number;
  /** From the end of the load until the log covered the last put. */
  catchUpS: number;
  cpuPct: number;
  peakRssMb: number;
  /** Its peak RSS once recording, before the load: what the load adds is the difference. */
  idleRssMb: number;
  exitCode: number | null;
}

export interface PointRestore {
  keys: number;
  events: number;
  revisions: [number, number];
  segments: number;
  eventsS: number;
  plain: { wallS: number[]; rssMb: number[]; cpuS: number[] };
  point: { wallS: number[]; rssMb: number[]; cpuS: number[] };
  ratio: number;
}

export interface ChangesTarget {
  name: string;
  pass?: boolean;
  detail: string;
}

export interface ChangesResult {
  date: string;
  options: ChangesOptions;
  load: [number, number];
  follow?: FollowUnderLoad;
  restore?: PointRestore;
  failures: string[];
  targets: ChangesTarget[];
}

const loadAvg = () => Number(fs.readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function vmHwmMb(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** The newest revision the store's change log reaches, from the segment names alone (no listing, no reads). */
function coveredRevision(dir: string, from: number): number {
  let covered = from;
  for (const name of fs.readdirSync(dir)) {
    const s = parseSegmentKey(name);
    if (s && s.last > covered) covered = s.last;
  }
  return covered;
}

/** `follow` as a child process, its stderr kept for the report. */
class Follower {
  readonly child: ChildProcess;
  private stderr = '';
  readonly exit: Promise<number | null>;

  constructor(spec: RunSpec) {
    this.child = spawn(spec.cmd, spec.args, { env: spec.env, stdio: ['ignore', 'ignore', 'pipe'] });
    this.child.stderr!.on('data', (b: Buffer) => (this.stderr = (this.stderr + b.toString()).slice(-8000)));
    this.exit = new Promise((resolve, reject) => {
      this.child.once('error', reject);
      this.child.once('close', (code) => resolve(code));
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  tail(): string {
    return this.stderr.trim().split('\n').slice(-5).join(' | ');
  }

  /** SIGTERM, as an operator stops it; killed if it has not stopped after a minute. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 60_000);
    try {
      return await this.exit;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Waits until the store's log reaches `revision`; throws if follow exits or it takes longer than `ms`. */
async function waitCovered(dir: string, from: number, revision: number, f: Follower, ms: number): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (coveredRevision(dir, from) >= revision) return (Date.now() - start) / 1000;
    if (f.child.exitCode !== null) throw new Error(`follow exited ${f.child.exitCode}: ${f.tail()}`);
    if (Date.now() - start > ms) throw new Error(`the change log did not reach revision ${revision} in ${ms / 1000} s: ${f.tail()}`);
    await sleep(100);
  }
}

async function fullBackup(ctx: ChangesContext, url: string, store: string): Promise<{ name: string; revision: number }> {
  const m = await measure(ctx.shield(['backup', '--endpoints', url, '--to', store]));
  const name = storedName(m.stderr);
  const rev = /at revision (\d+)/.exec(m.stderr);
  if (!rev) throw new Error(`backup --to printed no revision: ${m.stderr.slice(-2000)}`);
  return { name, revision: Number(rev[1]) };
}

async function currentRevision(etcd: Etcd3): Promise<number> {
  const r = await etcd.kv.range({ key: Buffer.from([0]), range_end: Buffer.from([0]), count_only: true });
  return Number(r.header.revision);
}

/** A put's revision and when etcd acknowledged it (ms since the load started). */
interface Written {
  revision: number;
  atMs: number;
}

/**
 * Puts `rate` 1 KiB values a second for `seconds`, put i due at i/rate s, at most WRITER_POOL in flight.
 * A put that falls behind its schedule goes at once (the achieved rate says how far behind it fell).
 */
async function pacedWriter(etcd: Etcd3, rate: number, seconds: number, t0: number): Promise<Written[]> {
  const total = Math.round(rate * seconds);
  const values = Array.from({ length: 64 }, (_, i) => Buffer.alloc(VALUE_BYTES, `v${i}-`));
  const out: Written[] = [];
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= total) return;
      const due = t0 + (i * 1000) / rate;
      const now = performance.now();
      if (due > now) await sleep(due - now);
      const r = await etcd.put(`/bench-load/k-${String(i % 10_000).padStart(5, '0')}`).value(values[i % values.length]!).exec();
      out.push({ revision: Number(r.header.revision), atMs: performance.now() - t0 });
    }
  };
  await Promise.all(Array.from({ length: WRITER_POOL }, worker));
  return out;
}

/**
 * Lag at each sample: the sample's time minus the acknowledgement time of the oldest put that the log
 * did not cover yet (0 if it covered all acknowledged so far).
 */
export function lags(writes: Written[], samples: { atMs: number; covered: number }[]): number[] {
  const byRev = [...writes].sort((a, b) => a.revision - b.revision);
  // suffixMin[i]: the earliest acknowledgement among puts from byRev[i] on.
  const suffixMin = new Array<number>(byRev.length + 1).fill(Infinity);
  for (let i = byRev.length - 1; i >= 0; i--) suffixMin[i] = Math.min(byRev[i]!.atMs, suffixMin[i + 1]!);
  return samples.map(({ atMs, covered }) => {
    let lo = 0;
    let hi = byRev.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (byRev[mid]!.revision <= covered) lo = mid + 1;
      else hi = mid;
    }
    const oldest = suffixMin[lo]!;
    return oldest < atMs ? (atMs - oldest) / 1000 : 0;
  });
}

function percentile(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

async function followUnderLoad(ctx: ChangesContext, o: ChangesOptions): Promise<FollowUnderLoad> {
  const store = emptyDir(path.join(ctx.tmp, 'changes-load'));
  const src = await ctx.startEtcd();
  let f: Follower | undefined;
  const etcd = client(src.url);
  try {
    const backup = await fullBackup(ctx, src.url, store);
    f = new Follower(ctx.shield(['follow', '--endpoints', src.url, '--to', store, '--flush', `${o.flushS}s`]));
    // Started when its first write is recorded: one put, then its segment (at most a flush later).
    await sleep(1000);
    const probe = await etcd.put('/bench-load/start').value('1').exec();
    await waitCovered(store, backup.revision, Number(probe.header.revision), f, (o.flushS + 30) * 1000);
    ctx.log(`    follow is recording; writing ${o.rate.toLocaleString('en')} puts/s of ${VALUE_BYTES} B for ${o.loadSeconds} s`);

    const pid = f.pid;
    const idleRssMb = vmHwmMb(pid);
    const cpuBefore = cpuSeconds(pid);
    const t0 = performance.now();
    const samples: { atMs: number; covered: number }[] = [];
    let peakRssMb = 0;
    const sampler = setInterval(() => {
      samples.push({ atMs: performance.now() - t0, covered: coveredRevision(store, backup.revision) });
      peakRssMb = Math.max(peakRssMb, vmHwmMb(pid));
    }, SAMPLE_MS);
    let writes: Written[];
    let loadMs: number;
    let cpuS: number;
    let catchUpS: number;
    try {
      writes = await pacedWriter(etcd, o.rate, o.loadSeconds, t0);
      loadMs = performance.now() - t0;
      cpuS = cpuSeconds(pid) - cpuBefore;
      const last = Math.max(...writes.map((w) => w.revision));
      catchUpS = await waitCovered(store, backup.revision, last, f, (o.flushS + 30) * 1000);
    } finally {
      clearInterval(sampler);
    }
    peakRssMb = Math.max(peakRssMb, vmHwmMb(pid));
    const exitCode = await f.stop();
    const l = lags(writes, samples);
    return {
      seconds: loadMs / 1000,
      puts: writes.length,
      achievedRate: writes.length / (loadMs / 1000),
      samples: samples.length,
      maxLagS: Math.max(0, ...l),
      p95LagS: percentile(l, 95),
      catchUpS,
      cpuPct: (cpuS / (loadMs / 1000)) * 100,
      peakRssMb,
      idleRssMb,
      exitCode,
    };
  } finally {
    etcd.close();
    if (f && f.child.exitCode === null && f.child.signalCode === null) f.child.kill('SIGKILL');
    await src.stop();
    fs.rmSync(store, { recursive: true, force: true });
  }
}

/**
 * EVENTS changes to the dataset, EVENTS_PER_TXN at a time, 8 transactions in flight: of every 10, 7 new
 * values for existing keys, 2 new keys, 1 delete. Keys of one transaction are distinct (the stride is prime).
 */
async function writeEvents(etcd: Etcd3, data: Dataset, events: number): Promise<void> {
  const keys = data.spec.keys;
  const value = (i: number) => Buffer.alloc(200 + ((i * 37) % 1800), `e${i}-`);
  const op = (i: number): IRequestOp => {
    const existing = data.item((i * 7919) % keys).key;
    const kind = i % 10;
    if (kind === 9) return { request_delete_range: { key: Buffer.from(existing) } };
    if (kind >= 7) return { request_put: { key: Buffer.from(`/registry/bench/changes/obj-${String(i).padStart(8, '0')}`), value: value(i) } };
    return { request_put: { key: Buffer.from(existing), value: value(i) } };
  };
  const inFlight = new Set<Promise<unknown>>();
  for (let i = 0; i < events; ) {
    const success: IRequestOp[] = [];
    for (const end = Math.min(events, i + EVENTS_PER_TXN); i < end; i++) success.push(op(i));
    while (inFlight.size >= 8) await Promise.race(inFlight);
    const p: Promise<unknown> = etcd.kv.txn({ compare: [], success, failure: [] }).finally(() => inFlight.delete(p));
    inFlight.add(p);
  }
  await Promise.all(inFlight);
}

/** Untimed: the restored etcd holds what the source held at the end (count, and a sample of keys). */
async function sameAsSource(src: Etcd3, dst: Etcd3, data: Dataset): Promise<void> {
  const count = async (e: Etcd3) => Number((await e.kv.range({ key: Buffer.from([0]), range_end: Buffer.from([0]), count_only: true })).count);
  const [a, b] = [await count(src), await count(dst)];
  if (a !== b) throw new Error(`the point restore left ${b} keys, the source has ${a}`);
  for (let i = 0; i < 200; i++) {
    const key = data.item((i * 7919) % data.spec.keys).key;
    const [x, y] = [(await src.kv.range({ key })).kvs[0], (await dst.kv.range({ key })).kvs[0]];
    if (Boolean(x) !== Boolean(y) || (x && !x.value.equals(y!.value))) throw new Error(`the point restore got key ${key} wrong`);
  }
}

async function pointRestore(ctx: ChangesContext, o: ChangesOptions): Promise<PointRestore> {
  const store = emptyDir(path.join(ctx.tmp, 'changes-restore'));
  const data = new Dataset({ keys: o.keys, seed: o.seed, layout: 'bench' });
  const src = await ctx.startEtcd();
  let f: Follower | undefined;
  const etcd = client(src.url);
  try {
    await load(etcd, data.spec);
    const backup = await fullBackup(ctx, src.url, store);
    ctx.log(`    full backup ${backup.name} of ${o.keys.toLocaleString('en')} keys at revision ${backup.revision}; ${o.events.toLocaleString('en')} events under follow`);
    f = new Follower(ctx.shield(['follow', '--endpoints', src.url, '--to', store, '--flush', `${o.flushS}s`]));
    await sleep(1000);
    const start = Date.now();
    await writeEvents(etcd, data, o.events);
    const eventsS = (Date.now() - start) / 1000;
    const end = await currentRevision(etcd);
    await waitCovered(store, backup.revision, end, f, (o.flushS + 60) * 1000);
    const code = await f.stop();
    if (code !== 0) throw new Error(`follow exited ${code} on SIGTERM: ${f.tail()}`);
    const segments = fs.readdirSync(store).filter((n) => parseSegmentKey(n)).length;

    const plain: Measured[] = [];
    const point: Measured[] = [];
    const restoreInto = async (args: string[], into: Measured[], check: boolean) => {
      const dst = await ctx.startEtcd();
      try {
        const m = await measure({ ...ctx.shield(['restore', '--endpoints', dst.url, '--from', store, ...args, '--overwrite']), watch: [dst.nodes[0]!.proc.pid!] });
        into.push(m);
        ctx.log(`    restore ${args.join(' ').padEnd(28)} ${(m.wallMs / 1000).toFixed(2).padStart(7)} s  ${(m.rss / MB).toFixed(0).padStart(5)} MB peak RSS`);
        if (check) {
          const d = client(dst.url);
          try {
            await sameAsSource(etcd, d, data);
          } finally {
            d.close();
          }
        }
      } finally {
        await dst.stop();
      }
    };
    for (let r = 1; r <= o.runs; r++) {
      // Alternate the order, so that drift on a noisy machine is not pinned on one side.
      const steps = [() => restoreInto(['--backup', backup.name], plain, false), () => restoreInto(['--to-revision', String(end)], point, r === 1)];
      for (const step of r % 2 ? steps : steps.reverse()) await step();
    }
    const side = (ms: Measured[]) => ({ wallS: ms.map((m) => m.wallMs / 1000), rssMb: ms.map((m) => m.rss / MB), cpuS: ms.map((m) => m.cpuS) });
    const p = side(plain);
    const q = side(point);
    return { keys: o.keys, events: o.events, revisions: [backup.revision, end], segments, eventsS, plain: p, point: q, ratio: median(q.wallS) / median(p.wallS) };
  } finally {
    etcd.close();
    if (f && f.child.exitCode === null && f.child.signalCode === null) f.child.kill('SIGKILL');
    await src.stop();
    fs.rmSync(store, { recursive: true, force: true });
  }
}

export function changesTargets(r: ChangesResult): ChangesTarget[] {
  const out: ChangesTarget[] = [];
  const o = r.options;
  const a = r.follow;
  if (a) {
    const max = o.flushS + CHANGES_TARGETS.lagOverFlushS;
    const at = `(${a.achievedRate.toFixed(0)} puts/s achieved of ${o.rate}, ${a.seconds.toFixed(0)} s)`;
    out.push({
      name: `follow lag ≤ flush + ${CHANGES_TARGETS.lagOverFlushS} s = ${max} s ${at}`,
      pass: a.maxLagS <= max,
      detail: `max ${a.maxLagS.toFixed(2)} s, p95 ${a.p95LagS.toFixed(2)} s over ${a.samples} samples; the last put covered ${a.catchUpS.toFixed(2)} s after the load ended`,
    });
    out.push({ name: `follow CPU ≤ ${CHANGES_TARGETS.cpuPct}% of one core ${at}`, pass: a.cpuPct <= CHANGES_TARGETS.cpuPct, detail: `${a.cpuPct.toFixed(1)}%` });
    out.push({ name: `follow peak RSS ≤ ${CHANGES_TARGETS.rssMb} MB`, pass: a.peakRssMb <= CHANGES_TARGETS.rssMb, detail: `${a.peakRssMb.toFixed(0)} MB (VmHWM; ${a.idleRssMb.toFixed(0)} MB once recording, before the load)` });
    out.push({ name: 'follow stops on SIGTERM with exit 0', pass: a.exitCode === 0, detail: `exit ${a.exitCode}` });
  }
  const b = r.restore;
  if (b) {
    const mw = (xs: number[]) => median(xs).toFixed(2);
    const small = b.keys < RESTORE_TARGET_MIN_KEYS;
    const perRun = b.point.wallS.map((w, i) => (w / b.plain.wallS[i]!).toFixed(2));
    out.push({
      name: `restore --to-revision ${b.events.toLocaleString('en')} events after a ${b.keys.toLocaleString('en')}-key backup ≤ ${CHANGES_TARGETS.restoreRatio}× its plain restore`,
      pass: small ? undefined : b.ratio <= CHANGES_TARGETS.restoreRatio,
      detail:
        `${b.ratio.toFixed(2)}× (${mw(b.point.wallS)} s vs ${mw(b.plain.wallS)} s, ${b.segments} segments${perRun.length > 1 ? `; within each run ${perRun.join(', ')}` : ''}); ` +
        `peak RSS ${median(b.point.rssMb).toFixed(0)} MB vs ${median(b.plain.rssMb).toFixed(0)} MB` +
        (small ? `; start-up weighs too much below ${RESTORE_TARGET_MIN_KEYS.toLocaleString('en')} keys to judge` : ''),
    });
  }
  for (const f of r.failures) out.push({ name: 'change log scenario runs', pass: false, detail: f });
  return out;
}

/** Both parts; a failure of one is reported as a failed target, and the other still runs. */
export async function changesBench(ctx: ChangesContext, o: ChangesOptions): Promise<ChangesResult> {
  const r: ChangesResult = { date: new Date().toISOString(), options: o, load: [loadAvg(), 0], failures: [], targets: [] };
  ctx.log(`\n== change log (issue 16): follow under ${o.rate} puts/s for ${o.loadSeconds} s; restore to a point ${o.events.toLocaleString('en')} events after a ${o.keys.toLocaleString('en')}-key backup`);
  try {
    r.follow = await followUnderLoad(ctx, o);
  } catch (err) {
    r.failures.push(`follow under load: ${firstLines(err)}`);
    ctx.log(`    follow under load FAILED: ${firstLines(err)}`);
  }
  try {
    r.restore = await pointRestore(ctx, o);
  } catch (err) {
    r.failures.push(`restore to a point: ${firstLines(err)}`);
    ctx.log(`    restore to a point FAILED: ${firstLines(err)}`);
  }
  r.load[1] = loadAvg();
  r.targets = changesTargets(r);
  return r;
}

const verdict = (t: ChangesTarget) => (t.pass === undefined ? 'n/a' : t.pass ? 'PASS' : 'FAIL');

export function changesText(r: ChangesResult): string {
  return [
    `\nchange log (issue 16), ${r.date}; load average ${r.load[0]} before, ${r.load[1]} after`,
    ...r.targets.map((t) => `  ${verdict(t).padEnd(4)}  ${t.name}: ${t.detail}`),
  ].join('\n');
}

export function changesMarkdown(r: ChangesResult): string {
  const o = r.options;
  return [
    `## Change log (issue 16)`,
    '',
    `${r.date}; load average ${r.load[0]} before, ${r.load[1]} after. Follow under load: \`follow --flush ${o.flushS}s\` into a directory store while ${o.rate.toLocaleString('en')} puts/s of ${VALUE_BYTES} B values run for ${o.loadSeconds} s; the lag, sampled every ${SAMPLE_MS / 1000} s from the segment names, is how long the oldest put the log does not cover yet has waited; CPU and peak RSS are the follower's own. Restore to a point: \`restore --to-revision\` of the last of ${o.events.toLocaleString('en')} events after a ${o.keys.toLocaleString('en')}-key full backup against \`restore --backup\` of that backup, each into a fresh etcd with --overwrite, median of ${o.runs} run(s).`,
    '',
    ...r.targets.map((t) => `- **${verdict(t)}** ${t.name.replace(/\|/g, '\\|')}: ${t.detail}`),
    '',
  ].join('\n');
}
