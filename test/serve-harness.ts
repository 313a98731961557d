// The real `etcd-shield serve` process for tests: started on a free
// loopback port with a config written to a temp dir, its JSON log lines
// parsed as they come, and always stopped.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { binPath, childEnv, repoRoot } from './cli';
import { freePort, track } from './harness';

export interface LogLine {
  level: number;
  time: string;
  msg: string;
  event?: string;
  job?: string;
  run?: string;
  kind?: string;
  trigger?: string;
  status?: string;
  error?: { kind: string; message: string; hint: string };
  [key: string]: unknown;
}

export interface ServeProcess {
  proc: ChildProcess;
  port: number;
  /** http://127.0.0.1:PORT */
  url: string;
  configPath: string;
  /** Every JSON line so far (pino's), in order. */
  logs(): LogLine[];
  /** Everything on stderr so far, as text. */
  stderr(): string;
  stdout(): string;
  /** Resolves with the first line (old or new) that matches; rejects after timeoutMs, showing the log's end. */
  waitForLog(match: (l: LogLine) => boolean, what: string, timeoutMs?: number): Promise<LogLine>;
  /** Resolves when the line count matching reaches n. */
  waitForCount(match: (l: LogLine) => boolean, n: number, what: string, timeoutMs?: number): Promise<LogLine[]>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  signal(sig: NodeJS.Signals): void;
  /** SIGTERM, then SIGKILL after timeoutMs; resolves once it is gone. */
  stop(timeoutMs?: number): Promise<void>;
}

export interface StartServeOptions {
  /** The YAML, given the port the service should listen on. */
  config: (port: number) => string;
  /** Where the config file is written (relative paths in it are taken from here). */
  dir: string;
  env?: Record<string, string>;
  args?: string[];
  /** Wait for the "started" line (default) or return at once. */
  wait?: boolean;
  timeoutMs?: number;
}

let configs = 0;

export async function startServe(opts: StartServeOptions): Promise<ServeProcess> {
  const port = await freePort();
  const configPath = join(opts.dir, `serve-${process.pid}-${++configs}.yaml`);
  writeFileSync(configPath, opts.config(port));
  const proc = spawn(process.execPath, [binPath, 'serve', '--config', configPath, ...(opts.args ?? [])], {
    cwd: repoRoot,
    env: childEnv(opts.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  track(proc);
  const lines: LogLine[] = [];
  let err = '';
  let out = '';
  let partial = '';
  const waiters = new Set<() => void>();
  proc.stdout!.on('data', (b: Buffer) => (out += b.toString('utf8')));
  proc.stderr!.on('data', (b: Buffer) => {
    const text = b.toString('utf8');
    err += text;
    partial += text;
    const parts = partial.split('\n');
    partial = parts.pop()!;
    for (const p of parts) {
      try {
        lines.push(JSON.parse(p) as LogLine);
      } catch {
        /* not a log line (a crash would show in stderr()) */
      }
    }
    for (const w of waiters) w();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => {
      for (const w of waiters) w();
      resolve({ code, signal });
    }),
  );
  let gone = false;
  void exited.then(() => (gone = true));

  const tail = () => err.split('\n').slice(-25).join('\n');
  const waitForCount = (match: (l: LogLine) => boolean, n: number, what: string, timeoutMs = 30_000) =>
    new Promise<LogLine[]>((resolve, reject) => {
      const check = () => {
        const found = lines.filter(match);
        if (found.length >= n) {
          done();
          resolve(found);
        } else if (gone) {
          done();
          reject(new Error(`serve exited before ${what} (${found.length}/${n}); its log ends:\n${tail()}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} (${lines.filter(match).length}/${n}); the log ends:\n${tail()}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });

  const serve: ServeProcess = {
    proc,
    port,
    url: `http://127.0.0.1:${port}`,
    configPath,
    logs: () => [...lines],
    stderr: () => err,
    stdout: () => out,
    waitForLog: async (match, what, timeoutMs) => (await waitForCount(match, 1, what, timeoutMs))[0]!,
    waitForCount,
    exited,
    signal: (sig) => {
      if (!gone) proc.kill(sig);
    },
    stop: async (timeoutMs = 15_000) => {
      if (gone) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(timer);
    },
  };
  if (opts.wait !== false) {
    try {
      await serve.waitForLog((l) => l.event === 'started', 'the service to start', opts.timeoutMs ?? 30_000);
    } catch (e) {
      await serve.stop(1000);
      throw e;
    }
  }
  return serve;
}

/** Run ends of a job, in order. */
export const runEnds = (s: ServeProcess, job?: string, kind = 'backup') => s.logs().filter((l) => l.event === 'end' && l.kind === kind && (job === undefined || l.job === job));
