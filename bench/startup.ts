// Start-up, as SHIELD's agent meets it: `etcd info` for every plugin it lists,
// and a small backup whose time is mostly loading and connecting.
//
//   node dist/bench/startup.js                      the bundle (copied alone) and bin/etcd-shield
//   node dist/bench/startup.js --exe PATH --exe PATH2 [--pairs 21] [--keys 10000] [--runs 5]
//
// (a) `node -e 0` and each executable's `info`, alternating, PAIRS times; the
//     ratio of the medians is held to INFO_TARGET.
// (b) a backup of KEYS keys from a local etcd: wall time, and when its first
//     Range request leaves (seen by bench/first-range.ts, preloaded).
// Each executable is run as a command, so its #! line's node flags apply.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startEtcd } from '../test/harness';
import { client, load } from './loader';
import { benchEnv, DROPPED_ENV, median } from './measure';

export const INFO_TARGET = 1.3;
const ROOT = path.resolve(__dirname, '..', '..');

export interface Executable {
  label: string;
  path: string;
}

export interface StartupOptions {
  executables?: Executable[];
  pairs?: number;
  keys?: number;
  runs?: number;
}

export interface StartupResult {
  node: string;
  pairs: number;
  nodeMs: number;
  info: { label: string; medianMs: number; ratio: number; pairRatio: number }[];
  keys: number;
  runs: number;
  backup: { label: string; wallMs: number; firstRangeMs: number; firstRangeSinceNodeMs: number }[];
  bundleBytes?: number;
  /** Variables set in the caller's shell that the measured commands ran without (DROPPED_ENV). */
  dropped: string[];
}

function timedRun(cmd: string, args: string[]): number {
  const start = process.hrtime.bigint();
  // stdout is a pipe, as SHIELD's agent reads `info`.
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'ignore'], env: benchEnv(), maxBuffer: 1 << 20 });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${r.status ?? r.signal}`);
  return ms;
}

/** The bundle as install-plugin leaves it: a lone copy, no node_modules above it. */
export function installedBundle(dir: string): Executable {
  const bundle = path.join(ROOT, 'dist', 'etcd-shield.js');
  if (!fs.existsSync(bundle)) throw new Error(`${bundle} is missing: run npm run build`);
  const exe = path.join(dir, 'etcd');
  fs.copyFileSync(bundle, exe);
  fs.chmodSync(exe, 0o755);
  return { label: 'bundle, copied alone', path: exe };
}

function timeInfo(exes: Executable[], pairs: number): Pick<StartupResult, 'nodeMs' | 'info'> {
  for (const e of exes) timedRun(e.path, ['info']); // page cache
  timedRun(process.execPath, ['-e', '0']);
  const base: number[] = [];
  const runs = exes.map(() => [] as number[]);
  for (let i = 0; i < pairs; i++) {
    // Alternate which goes first, so neither always follows the other.
    const order = i % 2 ? [...exes.keys()].reverse() : [...exes.keys()];
    if (i % 2) base.push(timedRun(process.execPath, ['-e', '0']));
    for (const j of order) runs[j]!.push(timedRun(exes[j]!.path, ['info']));
    if (!(i % 2)) base.push(timedRun(process.execPath, ['-e', '0']));
  }
  const nodeMs = median(base);
  return {
    nodeMs,
    info: exes.map((e, j) => ({
      label: e.label,
      medianMs: median(runs[j]!),
      ratio: median(runs[j]!) / nodeMs,
      pairRatio: median(runs[j]!.map((ms, i) => ms / base[i]!)),
    })),
  };
}

function backupOnce(exe: string, url: string, archive: string, mark: string): Promise<{ wallMs: number; firstRangeMs: number; firstRangeSinceNodeMs: number }> {
  fs.rmSync(archive, { force: true });
  fs.rmSync(mark, { force: true });
  const env = benchEnv({ NODE_OPTIONS: `--require ${path.join(__dirname, 'first-range.js')}`, STARTUP_BENCH_FIRST_RANGE: mark });
  return new Promise((resolve, reject) => {
    const spawnedAt = performance.timeOrigin + performance.now();
    const start = process.hrtime.bigint();
    const child = spawn(exe, ['backup', '--endpoints', url, '--out', archive], { stdio: ['ignore', 'ignore', 'pipe'], env });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const wallMs = Number(process.hrtime.bigint() - start) / 1e6;
      if (code !== 0) return reject(new Error(`${exe} backup exited with ${code}: ${stderr.trim()}`));
      if (!fs.existsSync(mark)) return reject(new Error(`${exe} backup sent no Range request that the preload saw`));
      const seen = JSON.parse(fs.readFileSync(mark, 'utf8')) as { epochMs: number; sinceNodeStartMs: number };
      resolve({ wallMs, firstRangeMs: seen.epochMs - spawnedAt, firstRangeSinceNodeMs: seen.sinceNodeStartMs });
    });
  });
}

async function timeBackup(exes: Executable[], keys: number, runs: number, tmp: string): Promise<StartupResult['backup']> {
  const cluster = await startEtcd();
  try {
    const etcd = client(cluster.url);
    try {
      await load(etcd, { keys, seed: 1 });
    } finally {
      etcd.close();
    }
    const archive = path.join(tmp, 'archive');
    const mark = path.join(tmp, 'first-range.json');
    for (const e of exes) await backupOnce(e.path, cluster.url, archive, mark); // page cache, etcd warm
    const got = exes.map(() => [] as Awaited<ReturnType<typeof backupOnce>>[]);
    for (let r = 0; r < runs; r++) for (const [j, e] of exes.entries()) got[j]!.push(await backupOnce(e.path, cluster.url, archive, mark));
    return exes.map((e, j) => ({
      label: e.label,
      wallMs: median(got[j]!.map((g) => g.wallMs)),
      firstRangeMs: median(got[j]!.map((g) => g.firstRangeMs)),
      firstRangeSinceNodeMs: median(got[j]!.map((g) => g.firstRangeSinceNodeMs)),
    }));
  } finally {
    await cluster.stop();
  }
}

export async function startupBench(opts: StartupOptions = {}): Promise<StartupResult> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-shield-startup-'));
  try {
    const exes = opts.executables ?? [installedBundle(tmp), { label: 'bin/etcd-shield (dist/)', path: path.join(ROOT, 'bin', 'etcd-shield') }];
    const pairs = opts.pairs ?? 21;
    const keys = opts.keys ?? 10_000;
    const runs = opts.runs ?? 5;
    const bundle = path.join(ROOT, 'dist', 'etcd-shield.js');
    return {
      node: process.version,
      pairs,
      ...timeInfo(exes, pairs),
      keys,
      runs,
      backup: await timeBackup(exes, keys, runs, tmp),
      ...(fs.existsSync(bundle) && { bundleBytes: fs.statSync(bundle).size }),
      dropped: DROPPED_ENV.filter((k) => process.env[k] !== undefined),
    };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

export function formatStartup(r: StartupResult): string {
  const ms = (n: number) => `${n.toFixed(1)} ms`;
  const width = Math.max(...r.info.map((i) => i.label.length), 9);
  const lines = [
    `Start-up (node ${r.node}, ${os.cpus().length} cores; median of ${r.pairs} alternating runs)`,
    `  ${'node -e 0'.padEnd(width)}  ${ms(r.nodeMs)}`,
    ...r.info.map(
      (i) =>
        `  ${i.label.padEnd(width)}  info ${ms(i.medianMs)}  ${i.ratio.toFixed(2)}x node (pairs: ${i.pairRatio.toFixed(2)}x)  target <= ${INFO_TARGET}x: ${i.ratio <= INFO_TARGET ? 'met' : 'MISSED'}`,
    ),
    `${r.keys.toLocaleString('en')}-key backup, median of ${r.runs}`,
    ...r.backup.map(
      (b) => `  ${b.label.padEnd(width)}  wall ${ms(b.wallMs)}  first Range ${ms(b.firstRangeMs)} after spawn (${ms(b.firstRangeSinceNodeMs)} after node started)`,
    ),
  ];
  if (r.bundleBytes !== undefined) lines.push(`  dist/etcd-shield.js: ${(r.bundleBytes / 1024).toFixed(0)} KiB`);
  if (r.dropped.length) lines.push(`  run without ${r.dropped.join(', ')} from this shell (bench/measure.ts, DROPPED_ENV)`);
  return lines.join('\n');
}

function parseArgs(argv: string[]): StartupOptions {
  const o: StartupOptions = {};
  const int = (v: string | undefined, name: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} needs a whole number above zero, not ${JSON.stringify(v)}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = () => argv[++i];
    if (a === '--exe') {
      const p = path.resolve(String(v()));
      (o.executables ??= []).push({ label: path.relative(process.cwd(), p) || p, path: p });
    } else if (a === '--pairs') o.pairs = int(v(), 'pairs');
    else if (a === '--keys') o.keys = int(v(), 'keys');
    else if (a === '--runs') o.runs = int(v(), 'runs');
    else throw new Error(`unknown option ${a}; see the comment at the top of bench/startup.ts`);
  }
  return o;
}

if (require.main === module) {
  startupBench(parseArgs(process.argv.slice(2))).then(
    (r) => {
      process.stdout.write(`${formatStartup(r)}\n`);
      process.exit(0);
    },
    (err: unknown) => {
      process.stderr.write(`startup: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
