import { Worker } from 'node:worker_threads';
import { CancelledError, FileError } from '../errors';

// Runs as source in a worker, so that the one-file build needs no file beside
// it. The worker shares the process's descriptors: it reads the fd it is given.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { readSync } = require('node:fs');
const { createHash } = require('node:crypto');
const { fd, length, chunk } = workerData;
try {
  const buf = Buffer.allocUnsafe(chunk);
  const hash = createHash('sha256');
  for (let at = 0; at < length; ) {
    const n = readSync(fd, buf, 0, Math.min(chunk, length - at), at);
    if (n === 0) throw new Error('it ends at byte ' + at);
    hash.update(buf.subarray(0, n));
    at += n;
  }
  parentPort.postMessage({ digest: hash.digest() });
} catch (err) {
  parentPort.postMessage({ error: String((err && err.message) || err) });
}
`;

/** A sha256 being computed on another thread; settle() before the fd is closed. */
export interface FileHash {
  /** The digest; rejects with FileError if the file could not be read, CancelledError if stopped. */
  readonly digest: Promise<Buffer>;
  /** Stops the worker if it still runs, and waits until it has. */
  settle(): Promise<void>;
}

/**
 * The sha256 of bytes [0, length) of an open file, read in chunks of
 * chunkBytes on a worker thread: a snapshot's other checks run meanwhile
 * on this one (docs/performance.md, "Reading snapshots").
 */
export function hashFileInWorker(fd: number, length: number, chunkBytes: number, path: string, signal?: AbortSignal): FileHash {
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { fd, length, chunk: chunkBytes } });
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  const digest = new Promise<Buffer>((resolve, reject) => {
    const stop = () => {
      void worker.terminate();
      reject(new CancelledError('stopped by a signal while checking the snapshot'));
    };
    if (signal?.aborted) stop();
    signal?.addEventListener('abort', stop, { once: true });
    const done = () => signal?.removeEventListener('abort', stop);
    worker.once('message', (m: { digest?: Uint8Array; error?: string }) => {
      done();
      if (m.digest) resolve(Buffer.from(m.digest));
      else reject(new FileError(`cannot read snapshot ${path}: ${m.error}`, 'check the file and its permissions'));
    });
    worker.once('error', (err) => {
      done();
      reject(new FileError(`cannot hash snapshot ${path}: ${err.message}`));
    });
    worker.once('exit', () => {
      done();
      reject(new FileError(`cannot hash snapshot ${path}: its worker thread stopped`));
    });
  });
  // Read by settle() callers that never await the digest (another check failed first).
  digest.catch(() => undefined);
  return {
    digest,
    async settle() {
      await worker.terminate();
      await exited;
    },
  };
}
