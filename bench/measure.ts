// Runs one command as a child process and measures its wall time and peak RSS.
//
// Peak RSS is the measured process's own high-water mark (ru_maxrss of the
// command itself, as GNU time reports it with %M), not that of etcd, of this
// benchmark, or of a consumer at the other end of a pipe. Wall time runs from
// spawn to exit, so process start-up (module loading, connecting) counts.
// Without /usr/bin/time, VmHWM from /proc/PID/status is polled every 20 ms
// instead, which can miss a peak in the last 20 ms of a process.
// A consumer (pipeTo) is attached with a real shell pipe, `cmd | pv ...`, as
// an operator would type it; wall time then lasts until both ends exit.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const GNU_TIME = '/usr/bin/time';
export const HAVE_GNU_TIME = fs.existsSync(GNU_TIME);

/**
 * DEBUG and NODE_OPTIONS change what a measured command does. And
 * NODE_EXTRA_CA_CERTS makes Node 20 read and parse that file, with its own
 * bundled roots, at every start: 50-60 ms of a 35 ms `node -e 0` on this
 * machine, paid before a line of ours runs and not at all by Go's etcdctl.
 * No measured command uses TLS, so the benchmark runs them as on a machine
 * without it (docs/performance.md, "Start-up").
 */
export const DROPPED_ENV = ['NODE_EXTRA_CA_CERTS', 'NODE_OPTIONS', 'DEBUG'];

/** The caller's environment for a measured command, without ETCD_*, ETCDCTL_*, SHIELD_* (they change flags silently) or DROPPED_ENV. */
export function benchEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('ETCD') || k.startsWith('SHIELD_') || DROPPED_ENV.includes(k)) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

export interface Measured {
  wallMs: number;
  /** Peak RSS of the measured command, in bytes. */
  rss: number;
  stderr: string;
  /** Bytes the command wrote to stdout when it went to a file (else 0). */
  outBytes: number;
  rssMethod: 'gnu-time' | 'vmhwm-poll';
  /** User + system CPU seconds of the measured command (GNU time only, else NaN). */
  cpuS: number;
  /** CPU seconds the watched processes (etcd) used meanwhile. */
  serverCpuS: number;
}

export interface RunSpec {
  cmd: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** stdout goes to this file (truncated first); default: discarded. */
  stdoutFile?: string;
  /** stdout is piped into this command (e.g. pv); its own output is discarded. */
  pipeTo?: { cmd: string; args: string[] };
  timeoutMs?: number;
  /** Processes (etcd members) whose CPU time during the run is reported as serverCpuS. */
  watch?: number[];
}

const CLK_TCK = 100; // USER_HZ: /proc reports CPU time in 1/100 s on Linux

/** utime + stime of a process, in seconds (0 if it is gone). */
export function cpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

function vmHwm(pid: number): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

function exited(p: ChildProcess, what: string, stderr: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    p.once('error', reject);
    p.once('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${what} exited ${code ?? signal}:\n${stderr().slice(-4000)}`));
    });
  });
}

export async function measure(spec: RunSpec): Promise<Measured> {
  const timeFile = path.join(os.tmpdir(), `etcd-shield-bench-time-${process.pid}-${Date.now()}`);
  const argv = HAVE_GNU_TIME ? ['-f', '%M %U %S', '-o', timeFile, spec.cmd, ...spec.args] : spec.args;
  const outFd = spec.stdoutFile ? fs.openSync(spec.stdoutFile, 'w') : undefined;
  const stdout = outFd ?? 'ignore';
  const errChunks: Buffer[] = [];
  const stderr = () => Buffer.concat(errChunks).toString('utf8');
  const what = [path.basename(spec.cmd), ...spec.args.slice(0, 2)].join(' ');

  const serverBefore = (spec.watch ?? []).map(cpuSeconds);
  const start = process.hrtime.bigint();
  // A pipe to a consumer is a shell pipeline, as an operator would type it: `cmd | pv -L 10m`.
  const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
  const [cmd, cmdArgs] = spec.pipeTo
    ? ['/bin/bash', ['-c', `set -o pipefail; "$@" | ${[spec.pipeTo.cmd, ...spec.pipeTo.args].map(quote).join(' ')} > /dev/null`, 'bash', ...(HAVE_GNU_TIME ? [GNU_TIME, ...argv] : [spec.cmd, ...argv])]]
    : [HAVE_GNU_TIME ? GNU_TIME : spec.cmd, argv];
  const child = spawn(cmd, cmdArgs, { env: spec.env ?? benchEnv(), stdio: ['ignore', stdout, 'pipe'] });
  if (outFd !== undefined) fs.closeSync(outFd);
  child.stderr!.on('data', (b: Buffer) => errChunks.push(b));

  let peak = 0;
  let poll: NodeJS.Timeout | undefined;
  if (!HAVE_GNU_TIME) {
    poll = setInterval(() => {
      const v = child.pid ? vmHwm(child.pid) : undefined;
      if (v !== undefined) peak = Math.max(peak, v);
    }, 20);
  }
  const timer = spec.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), spec.timeoutMs) : undefined;
  try {
    await exited(child, what, stderr);
  } catch (err) {
    fs.rmSync(timeFile, { force: true });
    throw err;
  } finally {
    if (poll) clearInterval(poll);
    if (timer) clearTimeout(timer);
  }
  const wallMs = Number(process.hrtime.bigint() - start) / 1e6;
  const serverCpuS = (spec.watch ?? []).reduce((sum, pid, i) => sum + cpuSeconds(pid) - serverBefore[i]!, 0);
  let rss = peak;
  let cpuS = NaN;
  if (HAVE_GNU_TIME) {
    const text = fs.readFileSync(timeFile, 'utf8').trim().split('\n').pop() ?? '';
    fs.rmSync(timeFile, { force: true });
    const [kb, user, sys] = text.split(' ').map(Number);
    rss = kb! * 1024;
    cpuS = user! + sys!;
    if (!Number.isFinite(rss) || rss <= 0) throw new Error(`cannot read peak RSS from GNU time output: ${JSON.stringify(text)}`);
  }
  const outBytes = spec.stdoutFile ? fs.statSync(spec.stdoutFile).size : 0;
  return { wallMs, rss, stderr: stderr(), outBytes, rssMethod: HAVE_GNU_TIME ? 'gnu-time' : 'vmhwm-poll', cpuS, serverCpuS };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
