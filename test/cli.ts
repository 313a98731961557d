// Runs the real CLI (bin/etcd-shield) as a child process, the way SHIELD and operators do.
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The repository root: the nearest directory above this file with the project's package.json. */
function findRepoRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg)) {
      try {
        if ((JSON.parse(fs.readFileSync(pkg, 'utf8')) as { name?: string }).name === 'etcd-shield') return dir;
      } catch {
        /* not ours; keep looking */
      }
    }
    if (path.dirname(dir) === dir) throw new Error(`no etcd-shield package.json above ${__dirname}`);
  }
}

export const repoRoot = findRepoRoot();
/** Archives and `info` output of the original Go plugin, kept in the repository. */
export const fixturesDir = path.join(repoRoot, 'test', 'fixtures');
export const binPath = path.join(repoRoot, 'bin', 'etcd-shield');

export interface CliResult {
  /** Exit code; -1 when the run was killed for exceeding timeoutMs. */
  code: number;
  stdout: Buffer;
  stderr: string;
}

export interface CliOptions {
  /** Written to stdin, which is then closed (stdin is always a pipe, never a TTY). */
  input?: Buffer | string;
  /** Added to the environment; ETCDCTL_* and DEBUG given here are kept. */
  env?: Record<string, string>;
  /** Kill the CLI after this long (default 60 s). */
  timeoutMs?: number;
  /** Node options before the executable (e.g. --require, --trace-gc). */
  nodeFlags?: string[];
}

/** The inherited environment without ETCD_*, ETCDCTL_*, SHIELD_* or DEBUG, which would silently change what etcd, etcdctl or the CLI do. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('ETCDCTL_') || k.startsWith('ETCD_') || k === 'DEBUG' || k.startsWith('SHIELD_')) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

export function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...(opts.nodeFlags ?? []), binPath, ...args], {
      cwd: repoRoot,
      env: childEnv(opts.env),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    // The CLI may exit before it reads stdin (e.g. a usage error).
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      let stderr = Buffer.concat(err).toString('utf8');
      if (timedOut) stderr += `\n[test/cli] etcd-shield ${args.join(' ')} killed after ${timeoutMs} ms`;
      else if (signal) stderr += `\n[test/cli] etcd-shield died of ${signal}`;
      resolve({ code: timedOut || code === null ? -1 : code, stdout: Buffer.concat(out), stderr });
    });
  });
}

/** A CLI child that a test can hold, signal and read while it runs. */
export interface RunningCli {
  child: ChildProcessWithoutNullStreams;
  stdout: Buffer[];
  stdoutBytes(): number;
  stderr(): string;
  /** Resolves with the first stdout chunk (stdout is then paused with holdStdout). */
  firstBytes: Promise<void>;
  /** Resolves once stderr matches, or when the CLI exits without it. */
  waitStderr(re: RegExp): Promise<void>;
  exit: Promise<CliResult>;
}

const live = new Set<ChildProcessWithoutNullStreams>();
process.on('exit', killStartedClis);

/** SIGKILLs every CLI from startCli that is still running (for after hooks). */
export function killStartedClis(): void {
  for (const c of live) c.kill('SIGKILL');
}

/** Starts the CLI without waiting for it; stdin stays open for the test to write to. */
export function startCli(args: string[], opts: { env?: Record<string, string>; holdStdout?: boolean } = {}): RunningCli {
  const child = spawn(process.execPath, [binPath, ...args], { cwd: repoRoot, env: childEnv(opts.env), stdio: ['pipe', 'pipe', 'pipe'] });
  live.add(child);
  const stdout: Buffer[] = [];
  let err = '';
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  child.stderr.on('data', (b: Buffer) => {
    err += b.toString('utf8');
    for (const w of [...waiters]) {
      if (w.re.test(err)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  });
  const firstBytes = new Promise<void>((resolve) => {
    child.stdout.once('data', (b: Buffer) => {
      stdout.push(b);
      if (opts.holdStdout) child.stdout.pause();
      child.stdout.on('data', (more: Buffer) => stdout.push(more));
      resolve();
    });
  });
  child.stdin.on('error', () => undefined);
  const exit = new Promise<CliResult>((resolve) => {
    child.once('close', (code, signal) => {
      live.delete(child);
      for (const w of waiters) w.resolve();
      resolve({ code: code ?? -1, stdout: Buffer.concat(stdout), stderr: err + (signal ? `\n[test] died of ${signal}` : '') });
    });
  });
  return {
    child,
    stdout,
    stdoutBytes: () => stdout.reduce((n, b) => n + b.length, 0),
    stderr: () => err,
    firstBytes,
    waitStderr: (re) =>
      re.test(err)
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            waiters.push({ re, resolve });
          }),
    exit,
  };
}

/** A one-line description of a run, for assertion messages. */
export function describeRun(r: CliResult): string {
  const out = r.stdout.length > 2000 ? `${r.stdout.subarray(0, 2000).toString('utf8')}…` : r.stdout.toString('utf8');
  return `exit ${r.code}\n--- stdout ---\n${out}\n--- stderr ---\n${r.stderr}`;
}

/** Fails with the whole run (command, exit, stdout, stderr) when the exit code is not the expected one. */
export function expectCode(r: CliResult, code: number, what: string): void {
  assert.equal(r.code, code, `${what}: expected exit ${code}\n${describeRun(r)}`);
}

/** The CLI failed the way it should: a handled error, no stack trace. */
export function assertNoCrash(r: CliResult, context: string): void {
  assert.doesNotMatch(r.stderr, /^\s+at .+:\d+:\d+\)?$/m, `${context}: a stack trace on stderr\n${describeRun(r)}`);
  assert.doesNotMatch(r.stderr, /unexpected error/i, `${context}: not a handled error\n${describeRun(r)}`);
}

/** validate's report: one `MARK NAME  message` line per check (every line must have that shape), optionally only one name's. */
export function reportLines(r: CliResult, only?: string): { mark: string; name: string; text: string }[] {
  const lines = r.stdout
    .toString('utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const m = /^([✓✗!]) (\S+)\s+(.*)$/.exec(l);
      assert.ok(m, `validate printed a line that is not "✓|✗|! name message": ${JSON.stringify(l)}\n${describeRun(r)}`);
      return { mark: m[1]!, name: m[2]!, text: m[3]! };
    });
  return only === undefined ? lines : lines.filter((l) => l.name === only);
}
