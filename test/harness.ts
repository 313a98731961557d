// Shared real-etcd test harness: loopback only, temp data dirs, no leaked processes.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { makeCerts, type CertSet } from './certs';
import { childEnv } from './cli';

export type { CertSet } from './certs';

export const ETCD_BIN = '/usr/bin/etcd';
export const ETCDCTL_BIN = '/usr/bin/etcdctl';
const SETPRIV = '/usr/bin/setpriv';
const HOST = '127.0.0.1';
const TAIL_BYTES = 64 * 1024;

// ---------------------------------------------------------------------------
// Global cleanup: children and temp dirs are tracked so that even a crashing
// test process kills its etcds (SIGKILL works on SIGSTOPped ones too).

const liveProcs = new Set<ChildProcess>();
const liveDirs = new Set<string>();
let cleanupInstalled = false;

function cleanupSync(): void {
  for (const p of liveProcs) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  liveProcs.clear();
  for (const d of liveDirs) {
    for (let i = 0; i < 3; i++) {
      try {
        fs.rmSync(d, { recursive: true, force: true });
        break;
      } catch {
        /* a dying etcd may still be writing; retry */
      }
    }
  }
  liveDirs.clear();
}

function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', cleanupSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      cleanupSync();
      process.removeListener(sig, onSignal);
      // Keep default "die on signal" semantics unless someone else handles it.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

const DIR_PREFIX = 'etcd-shield-test-';
const OWNER_FILE = '.owner-pid';
let swept = false;

// A SIGKILLed test process can't clean up; later runs remove dirs whose owner is gone.
function sweepStaleDirs(): void {
  if (swept) return;
  swept = true;
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(os.tmpdir()).filter((e) => e.startsWith(DIR_PREFIX));
  } catch {
    return;
  }
  for (const e of entries) {
    const d = path.join(os.tmpdir(), e);
    try {
      const pid = Number(fs.readFileSync(path.join(d, OWNER_FILE), 'utf8'));
      if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) continue;
      try {
        process.kill(pid, 0);
        continue; // owner alive
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') continue;
      }
      fs.rmSync(d, { recursive: true, force: true });
    } catch {
      /* no owner file yet, or already removed by someone else */
    }
  }
}

/** The child is SIGKILLed if this process exits (or is signalled) while it runs. */
export function track(p: ChildProcess): void {
  installCleanup();
  liveProcs.add(p);
  p.once('exit', () => liveProcs.delete(p));
}

/** A fresh temp dir, removed at exit, or by a later run if this process dies unclean. */
export function makeTestDir(): string {
  installCleanup();
  sweepStaleDirs();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), DIR_PREFIX));
  liveDirs.add(dir);
  fs.writeFileSync(path.join(dir, OWNER_FILE), String(process.pid));
  return dir;
}

export async function removeTestDir(dir: string): Promise<void> {
  await fs.promises.rm(dir, { recursive: true, force: true });
  liveDirs.delete(dir);
}

// etcd 3.4 refuses to run on non-amd64/ppc64le unless told otherwise.
function etcdEnv(): NodeJS.ProcessEnv {
  const goArch: Record<string, string> = { arm64: 'arm64', arm: 'arm', ia32: '386', s390x: 's390x', ppc64: 'ppc64le' };
  if (process.arch === 'x64' || process.arch === 'ppc64') return childEnv();
  return childEnv({ ETCD_UNSUPPORTED_ARCH: goArch[process.arch] ?? process.arch });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// Ports

const handedOut = new Set<number>();

/** A currently free 127.0.0.1 port, never the same one twice in this process. */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.unref();
      srv.once('error', reject);
      srv.listen({ host: HOST, port: 0, exclusive: true }, () => {
        const { port } = srv.address() as net.AddressInfo;
        srv.close(() => resolve(port));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('freePort: no unused loopback port found');
}

/** Whether something accepts connections on the loopback port. */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: HOST, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(500, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

// ---------------------------------------------------------------------------
// Public types

export interface EtcdctlOptions {
  /** Written to etcdctl's stdin (e.g. `put KEY` with the value on stdin). */
  input?: string | Buffer;
  /** Override endpoints (default: all cluster client URLs). */
  endpoints?: string[];
  /** `{name, password}` to act as another user; `false` for no --user even if RBAC is on. */
  user?: { name: string; password: string } | false;
  /** Only --endpoints is added; caller supplies TLS/auth flags itself. */
  bare?: boolean;
  /** Kill etcdctl after this long (default 30 s); the result then has code -1. */
  timeoutMs?: number;
  /** Throw (with stderr) on non-zero exit. */
  check?: boolean;
}

export interface EtcdctlResult {
  stdout: Buffer;
  stderr: string;
  code: number;
}

export interface RbacOptions {
  rootPassword: string;
  /** Each user gets role `${name}-role` with the given prefix permissions. */
  users?: { name: string; password: string; readwritePrefix?: string; readPrefix?: string }[];
}

export interface StartEtcdOptions {
  members?: number;
  /** https client URLs with a server cert (peers stay plain http). */
  tls?: boolean;
  /** --client-cert-auth --trusted-ca-file (implies tls). */
  clientCertAuth?: boolean;
  keyType?: 'rsa' | 'ec';
  /** Forwarded to makeCerts. */
  pkcs8?: boolean;
  /** ca.clientCert is expired; the etcdctl helper then authenticates with the server cert. */
  expiredClientCert?: boolean;
  rbac?: RbacOptions;
  /** Appended last, so they override the harness defaults. */
  extraArgs?: string[];
  /** Overall readiness timeout (default 20 s, 30 s for 3 members). */
  startTimeoutMs?: number;
}

export interface EtcdNode {
  name: string;
  clientUrl: string;
  peerUrl: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  /** The current (or most recent) etcd process. */
  proc: ChildProcess;
  readonly running: boolean;
  /** Graceful stop (default SIGTERM, SIGKILL after 10 s). Keeps the data dir. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** SIGKILL and wait for exit. Keeps the data dir. */
  kill(): Promise<void>;
  /** Restart with the same data dir and ports. `wait: 'port'` skips the quorum-needing health check. */
  start(opts?: { wait?: 'health' | 'port' | 'none' }): Promise<void>;
  /** SIGSTOP */
  pause(): void;
  /** SIGCONT */
  resume(): void;
  /** Last ~64 KB of etcd's stderr/stdout. */
  stderrTail(): string;
}

export interface EtcdCluster {
  nodes: EtcdNode[];
  endpoints: string[];
  url: string;
  ca?: CertSet;
  /** Temp dir holding node data dirs and certs; removed by stop(). */
  dir: string;
  tls: boolean;
  clientCertAuth: boolean;
  rbac?: RbacOptions;
  etcdctl(args: string[], opts?: EtcdctlOptions): Promise<EtcdctlResult>;
  /** SIGKILLs all members and removes all data. Idempotent. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------
// etcdctl

function runEtcdctl(args: string[], opts: { input?: string | Buffer; timeoutMs?: number }): Promise<EtcdctlResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(ETCDCTL_BIN, args, { env: childEnv({ ETCDCTL_API: '3' }), stdio: ['pipe', 'pipe', 'pipe'] });
    track(p);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      p.kill('SIGKILL');
    }, opts.timeoutMs ?? 30_000);
    p.stdout!.on('data', (b: Buffer) => out.push(b));
    p.stderr!.on('data', (b: Buffer) => err.push(b));
    p.stdin!.on('error', () => {}); // etcdctl may exit before reading stdin
    p.stdin!.end(opts.input ?? '');
    p.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    p.once('close', (code, signal) => {
      clearTimeout(timer);
      let stderr = Buffer.concat(err).toString('utf8');
      if (timedOut) stderr += `\n[harness] etcdctl timed out after ${opts.timeoutMs ?? 30_000} ms`;
      resolve({ stdout: Buffer.concat(out), stderr, code: timedOut ? -1 : code ?? 128 + (os.constants.signals[signal!] ?? 0) });
    });
  });
}

// ---------------------------------------------------------------------------
// Nodes

class Tail {
  private buf = Buffer.alloc(0);
  push(b: Buffer): void {
    this.buf = Buffer.concat([this.buf, b]);
    if (this.buf.length > TAIL_BYTES) this.buf = Buffer.from(this.buf.subarray(this.buf.length - TAIL_BYTES));
  }
  toString(): string {
    return this.buf.toString('utf8');
  }
}

interface ClusterCtx {
  tls: boolean;
  ca?: CertSet;
  clientCertAuth: boolean;
  initialCluster: string;
  token: string;
  extraArgs: string[];
  etcdctl(args: string[], opts?: EtcdctlOptions): Promise<EtcdctlResult>;
}

class Node implements EtcdNode {
  proc!: ChildProcess;
  private exited: Promise<void> = Promise.resolve();
  private alive = false;
  private paused = false;
  private tail = new Tail();
  readonly clientUrl: string;
  readonly peerUrl: string;

  constructor(
    readonly name: string,
    readonly clientPort: number,
    readonly peerPort: number,
    readonly dataDir: string,
    private ctx: ClusterCtx,
  ) {
    this.clientUrl = `${ctx.tls ? 'https' : 'http'}://${HOST}:${clientPort}`;
    this.peerUrl = `http://${HOST}:${peerPort}`;
  }

  get running(): boolean {
    return this.alive;
  }

  stderrTail(): string {
    return this.tail.toString();
  }

  private args(): string[] {
    const c = this.ctx;
    const a = [
      `--name=${this.name}`,
      `--data-dir=${this.dataDir}`,
      `--listen-client-urls=${this.clientUrl}`,
      `--advertise-client-urls=${this.clientUrl}`,
      `--listen-peer-urls=${this.peerUrl}`,
      `--initial-advertise-peer-urls=${this.peerUrl}`,
      `--initial-cluster=${c.initialCluster}`,
      '--initial-cluster-state=new',
      `--initial-cluster-token=${c.token}`,
      '--heartbeat-interval=50',
      '--election-timeout=500',
      '--logger=zap',
      '--log-level=error',
      '--log-outputs=stderr',
      '--enable-pprof=false',
      // Cheap password hashing keeps RBAC setup/auth fast.
      '--bcrypt-cost=4',
    ];
    if (c.tls) a.push(`--cert-file=${c.ca!.serverCert}`, `--key-file=${c.ca!.serverKey}`);
    if (c.clientCertAuth) a.push('--client-cert-auth', `--trusted-ca-file=${c.ca!.caCert}`);
    return [...a, ...c.extraArgs];
  }

  /** Spawn without waiting for readiness. */
  spawnProc(): void {
    if (this.alive) throw new Error(`etcd ${this.name} is already running`);
    // pdeathsig: etcd dies with us even if we are SIGKILLed and 'exit' never runs.
    const usePdeath = fs.existsSync(SETPRIV);
    const cmd = usePdeath ? SETPRIV : ETCD_BIN;
    const argv = usePdeath ? ['--pdeathsig', 'KILL', '--', ETCD_BIN, ...this.args()] : this.args();
    const p = spawn(cmd, argv, { env: etcdEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    track(p);
    this.proc = p;
    this.alive = true;
    this.paused = false;
    p.stdout!.on('data', (b: Buffer) => this.tail.push(b));
    p.stderr!.on('data', (b: Buffer) => this.tail.push(b));
    this.exited = new Promise<void>((resolve) => {
      p.once('error', (e) => {
        this.tail.push(Buffer.from(`[harness] spawn error: ${e.message}\n`));
        this.alive = false;
        resolve();
      });
      p.once('close', () => {
        this.alive = false;
        resolve();
      });
    });
  }

  async start(opts: { wait?: 'health' | 'port' | 'none' } = {}): Promise<void> {
    this.spawnProc();
    const wait = opts.wait ?? 'health';
    if (wait !== 'none') await waitReady([this], this.ctx, 20_000, wait === 'health');
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!this.alive) return;
    this.proc.kill(signal);
    if (this.paused) this.resume(); // a stopped process can't handle SIGTERM
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }

  kill(): Promise<void> {
    return this.stop('SIGKILL');
  }

  pause(): void {
    if (!this.alive) throw new Error(`etcd ${this.name} is not running`);
    this.proc.kill('SIGSTOP');
    this.paused = true;
  }

  resume(): void {
    if (!this.alive) return;
    this.proc.kill('SIGCONT');
    this.paused = false;
  }
}

function describeFailure(nodes: Node[], why: string): Error {
  const parts = [why];
  for (const n of nodes) {
    const tail = n.stderrTail();
    parts.push(`--- ${n.name} (${n.clientUrl}, running=${n.running}) stderr tail ---\n${tail.slice(-4000) || '(empty)'}`);
  }
  return new Error(parts.join('\n'));
}

async function waitReady(nodes: Node[], ctx: ClusterCtx, timeoutMs: number, health: boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const dead = () => nodes.find((n) => !n.running);
  // Cheap TCP poll first; spawning etcdctl every few ms would be costly.
  for (;;) {
    const d = dead();
    if (d) throw describeFailure(nodes, `etcd ${d.name} exited during startup`);
    const ok = await Promise.all(nodes.map((n) => canConnect(n.clientPort)));
    if (ok.every(Boolean)) break;
    if (Date.now() > deadline) throw describeFailure(nodes, `etcd client port not open after ${timeoutMs} ms`);
    await sleep(25);
  }
  if (!health) return;
  let last: EtcdctlResult | undefined;
  for (;;) {
    last = await ctx.etcdctl(['endpoint', 'health', '--dial-timeout=1s', '--command-timeout=1s'], {
      endpoints: nodes.map((n) => n.clientUrl),
      timeoutMs: 5000,
    });
    if (last.code === 0) return;
    const d = dead();
    if (d) throw describeFailure(nodes, `etcd ${d.name} exited during startup`);
    if (Date.now() > deadline) {
      throw describeFailure(
        nodes,
        `etcd not healthy after ${timeoutMs} ms; last 'etcdctl endpoint health':\n${last.stdout.toString()}${last.stderr}`,
      );
    }
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------
// Cluster

let clusterSeq = 0;

export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdCluster> {
  const members = opts.members ?? 1;
  if (!Number.isInteger(members) || members < 1) throw new Error(`startEtcd: bad members ${members}`);
  const clientCertAuth = !!opts.clientCertAuth;
  const tls = !!opts.tls || clientCertAuth;
  const timeoutMs = opts.startTimeoutMs ?? (members > 1 ? 30_000 : 20_000);

  installCleanup();
  sweepStaleDirs();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), DIR_PREFIX));
  liveDirs.add(dir);
  fs.writeFileSync(path.join(dir, OWNER_FILE), String(process.pid));
  let nodes: Node[] = [];
  let stopped = false;

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    // Data is discarded anyway, so no graceful shutdown (saves leader transfer time).
    await Promise.all(nodes.map((n) => n.kill()));
    await fs.promises.rm(dir, { recursive: true, force: true });
    liveDirs.delete(dir);
  };

  try {
    const ca = tls
      ? await makeCerts(path.join(dir, 'certs'), { keyType: opts.keyType, pkcs8: opts.pkcs8, expired: opts.expiredClientCert })
      : undefined;

    let authUser: { name: string; password: string } | undefined;
    const etcdctl = (args: string[], o: EtcdctlOptions = {}): Promise<EtcdctlResult> => {
      const eps = o.endpoints ?? nodes.map((n) => n.clientUrl);
      const flags = [`--endpoints=${eps.join(',')}`];
      if (!o.bare) {
        if (ca) flags.push(`--cacert=${ca.caCert}`);
        // An expired client cert can't seed data, so fall back to the server cert (it has clientAuth EKU).
        if (ca && clientCertAuth && opts.expiredClientCert) flags.push(`--cert=${ca.serverCert}`, `--key=${ca.serverKey}`);
        else if (ca && clientCertAuth) flags.push(`--cert=${ca.clientCert}`, `--key=${ca.clientKey}`);
        const u = o.user === undefined ? authUser : o.user || undefined;
        // --password avoids splitting problems with ':' in passwords.
        if (u) flags.push(`--user=${u.name}`, `--password=${u.password}`);
      }
      return runEtcdctl([...flags, ...args], o).then((r) => {
        if (o.check && r.code !== 0) {
          throw new Error(`etcdctl ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
        }
        return r;
      });
    };

    const seq = ++clusterSeq;
    for (let attempt = 1; ; attempt++) {
      const ports = await Promise.all(Array.from({ length: members * 2 }, () => freePort()));
      const names = Array.from({ length: members }, (_, i) => `etcd${i}`);
      const ctx: ClusterCtx = {
        tls,
        ca,
        clientCertAuth,
        initialCluster: names.map((nm, i) => `${nm}=http://${HOST}:${ports[2 * i + 1]}`).join(','),
        token: `etcd-shield-${process.pid}-${seq}-${attempt}-${randomBytes(4).toString('hex')}`,
        extraArgs: opts.extraArgs ?? [],
        etcdctl,
      };
      nodes = names.map((nm, i) => new Node(nm, ports[2 * i], ports[2 * i + 1], path.join(dir, `${nm}.etcd`), ctx));
      nodes.forEach((n) => n.spawnProc());
      try {
        await waitReady(nodes, ctx, timeoutMs, true);
        break;
      } catch (e) {
        // Another process may grab a port between freePort() and etcd's bind.
        const portClash = nodes.some((n) => /address already in use/.test(n.stderrTail()));
        await Promise.all(nodes.map((n) => n.kill()));
        if (!portClash || attempt >= 3) throw e;
        for (const n of nodes) fs.rmSync(n.dataDir, { recursive: true, force: true });
      }
    }

    if (opts.rbac) {
      const r = opts.rbac;
      const run = (args: string[]) => etcdctl(args, { check: true });
      await run(['user', 'add', 'root', `--new-user-password=${r.rootPassword}`, '--interactive=false']);
      await run(['user', 'grant-role', 'root', 'root']);
      for (const u of r.users ?? []) {
        const role = `${u.name}-role`;
        await run(['role', 'add', role]);
        if (u.readwritePrefix !== undefined) {
          await run(['role', 'grant-permission', '--prefix=true', role, 'readwrite', u.readwritePrefix]);
        }
        if (u.readPrefix !== undefined) {
          await run(['role', 'grant-permission', '--prefix=true', role, 'read', u.readPrefix]);
        }
        await run(['user', 'add', u.name, `--new-user-password=${u.password}`, '--interactive=false']);
        await run(['user', 'grant-role', u.name, role]);
      }
      await run(['auth', 'enable']);
      authUser = { name: 'root', password: r.rootPassword };
    }

    const endpoints = nodes.map((n) => n.clientUrl);
    return {
      nodes,
      endpoints,
      url: endpoints.join(','),
      ca,
      dir,
      tls,
      clientCertAuth,
      rbac: opts.rbac,
      etcdctl,
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Starts a cluster, runs fn, and always stops it. */
export async function withEtcd<T>(opts: StartEtcdOptions, fn: (cluster: EtcdCluster) => Promise<T>): Promise<T> {
  const cluster = await startEtcd(opts);
  try {
    return await fn(cluster);
  } finally {
    await cluster.stop();
  }
}
