// A real s3rver (node_modules/s3rver) on a free loopback port, for the S3 store's tests.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { childEnv, repoRoot } from './cli';
import { canConnect, freePort, makeTestDir, removeTestDir, track } from './harness';

const HOST = '127.0.0.1';
const S3RVER_BIN = path.join(repoRoot, 'node_modules', 's3rver', 'bin', 's3rver.js');
const START_TIMEOUT_MS = 15_000;
const MAX_LOG = 4 * 1024 * 1024;

/** s3rver accepts this pair (and any secret for this id); any other access key id is refused with 403 InvalidAccessKeyId. */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export interface S3rver {
  endpoint: string;
  port: number;
  bucket: string;
  /** s3rver's data directory: one directory per bucket, `<key>._S3rver_object` files, unfinished uploads in `._S3rver_uploads/`. */
  dir: string;
  proc: ChildProcess;
  /** s3rver's log so far: a line per response, with the query (e.g. `uploadId=...&x-id=AbortMultipartUpload 405`). */
  log(): string;
  /** Multipart uploads s3rver still holds for `key` (in the bucket), by upload id. */
  pendingUploads(key: string): string[];
  /** Bytes s3rver has received of the unfinished uploads to `key`. */
  pendingUploadBytes(key: string): number;
  /** SIGKILL; keeps `dir` so a new s3rver can start on it. */
  kill(): Promise<void>;
  /** Ends the process and removes `dir` unless the caller gave it. */
  stop(): Promise<void>;
}

export interface StartS3rverOptions {
  /** Created at start (default "test-bucket"). */
  bucket?: string;
  /** Start on the data of an earlier s3rver (it is then not removed by stop). */
  dir?: string;
  /** PEM files: s3rver then serves https. */
  tls?: { cert: string; key: string };
}


export async function startS3rver(opts: StartS3rverOptions = {}): Promise<S3rver> {
  const bucket = opts.bucket ?? 'test-bucket';
  const ownDir = opts.dir === undefined ? makeTestDir() : undefined;
  const dir = opts.dir ?? path.join(ownDir!, 's3rver');
  fs.mkdirSync(dir, { recursive: true });
  try {
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const started = await spawnS3rver(dir, port, bucket, opts.tls);
      if (started.ready) return server(started.proc, started.log, port, bucket, dir, ownDir, opts.tls !== undefined);
      await exited(started.proc, 'SIGKILL');
      if (!/EADDRINUSE/.test(started.log()) || attempt >= 3) throw new Error(`s3rver did not start on port ${port}:\n${started.log()}`);
    }
  } catch (err) {
    if (ownDir) await removeTestDir(ownDir);
    throw err;
  }
}

async function spawnS3rver(dir: string, port: number, bucket: string, tls: StartS3rverOptions['tls']) {
  // Not --silent: the log shows which requests reached s3rver (an abort it refused, say).
  // s3rver makes ListObjectsV2 continuation tokens with DES, which OpenSSL 3 keeps in its legacy provider.
  const args = ['--openssl-legacy-provider', S3RVER_BIN, '-d', dir, '-a', HOST, '-p', String(port), '--configure-bucket', bucket];
  if (tls) args.push('--cert', tls.cert, '--key', tls.key);
  const proc = spawn(process.execPath, args, { env: childEnv({ NO_COLOR: '1' }), stdio: ['ignore', 'pipe', 'pipe'] });
  track(proc);
  let text = '';
  const append = (b: Buffer) => {
    text += b.toString('utf8').replace(/\x1b\[[0-9;]*m/g, '');
    // The newest lines are the ones a test asks about: a long run keeps the tail.
    if (text.length > MAX_LOG) text = text.slice(-MAX_LOG / 2);
  };
  proc.stdout!.on('data', append);
  proc.stderr!.on('data', append);
  const log = () => text;
  const deadline = Date.now() + START_TIMEOUT_MS;
  // s3rver creates the bucket before it listens, so a connection means it is ready.
  while (Date.now() < deadline && proc.exitCode === null && proc.signalCode === null) {
    if (await canConnect(port)) return { proc, log, ready: true };
    await new Promise((r) => setTimeout(r, 50));
  }
  return { proc, log, ready: false };
}

function exited(proc: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    proc.once('exit', () => resolve());
    proc.kill(signal);
  });
}

function server(proc: ChildProcess, log: () => string, port: number, bucket: string, dir: string, ownDir: string | undefined, tls: boolean): S3rver {
  const uploadsDir = path.join(dir, bucket, '._S3rver_uploads');
  const uploads = (key: string): string[] => {
    let ids: string[] = [];
    try {
      ids = fs.readdirSync(uploadsDir);
    } catch {
      return [];
    }
    return ids.filter((id) => {
      try {
        return fs.readFileSync(path.join(uploadsDir, id, 'key'), 'utf8') === key;
      } catch {
        return false; // completed meanwhile
      }
    });
  };
  return {
    endpoint: `${tls ? 'https' : 'http'}://${HOST}:${port}`,
    port,
    bucket,
    dir,
    proc,
    log,
    pendingUploads: uploads,
    pendingUploadBytes: (key) => {
      let bytes = 0;
      for (const id of uploads(key)) {
        let parts: string[] = [];
        try {
          parts = fs.readdirSync(path.join(uploadsDir, id)).filter((name) => /^\d+$/.test(name));
        } catch {
          continue; // completed meanwhile
        }
        for (const part of parts) bytes += fs.statSync(path.join(uploadsDir, id, part), { throwIfNoEntry: false })?.size ?? 0;
      }
      return bytes;
    },
    kill: () => exited(proc, 'SIGKILL'),
    stop: async () => {
      await exited(proc, 'SIGKILL');
      if (ownDir) await removeTestDir(ownDir);
    },
  };
}
