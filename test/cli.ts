// Runs the real CLI (bin/etcd-shield) as a child process, the way SHIELD and operators do.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
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
/** The shared folder sits beside the clone (../shared), in CI as on a workstation. */
export const fixturesDir = path.join(repoRoot, '..', 'shared', 'fixtures');
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
}

/** The inherited environment without etcdctl settings or DEBUG, which would change what the CLI does. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('ETCDCTL_') || k === 'DEBUG' || k.startsWith('SHIELD_')) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

export function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [binPath, ...args], {
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

/** A one-line description of a run, for assertion messages. */
export function describeRun(r: CliResult): string {
  const out = r.stdout.length > 2000 ? `${r.stdout.subarray(0, 2000).toString('utf8')}…` : r.stdout.toString('utf8');
  return `exit ${r.code}\n--- stdout ---\n${out}\n--- stderr ---\n${r.stderr}`;
}

/** Fails with the whole run (command, exit, stdout, stderr) when the exit code is not the expected one. */
export function expectCode(r: CliResult, code: number, what: string): void {
  assert.equal(r.code, code, `${what}: expected exit ${code}\n${describeRun(r)}`);
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
