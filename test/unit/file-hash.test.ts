// The sha256 of a snapshot file, computed on a worker thread
// (src/snapshot/file-hash.ts) while the main thread walks the tree.
import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isMainThread } from 'node:worker_threads';
import { CancelledError, FileError } from '../../src/errors';
import { hashFileInWorker } from '../../src/snapshot/file-hash';

const dir = mkdtempSync(join(tmpdir(), 'etcd-shield-file-hash-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function withFile<T>(bytes: Buffer, fn: (fd: number, path: string) => Promise<T>): Promise<T> {
  const path = join(dir, `f-${Math.random()}`);
  writeFileSync(path, bytes);
  const fd = openSync(path, 'r');
  return fn(fd, path).finally(() => closeSync(fd));
}

test('hashes the first length bytes of the open file, in chunks of any size', async () => {
  const bytes = randomBytes(300_000);
  await withFile(bytes, async (fd, path) => {
    for (const [length, chunk] of [[bytes.length, 64 * 1024], [bytes.length - 32, 4096], [1, 7], [0, 1024]] as const) {
      const h = hashFileInWorker(fd, length, chunk, path);
      assert.deepEqual(await h.digest, createHash('sha256').update(bytes.subarray(0, length)).digest(), `${length} bytes in chunks of ${chunk}`);
      await h.settle();
    }
  });
});

test('the worker reads and hashes while the main thread is blocked', async () => {
  assert.ok(isMainThread);
  // Bytes read by threads other than this one: the process's count less this thread's own.
  const rchar = (file: string) => Number(/^rchar: (\d+)/m.exec(readFileSync(file, 'utf8'))![1]);
  const byOthers = () => {
    const mine = rchar(`/proc/self/task/${process.pid}/io`);
    return rchar('/proc/self/io') - mine;
  };
  const bytes = randomBytes(8 * 1024 * 1024);
  await withFile(bytes, async (fd, path) => {
    const from = byOthers();
    const h = hashFileInWorker(fd, bytes.length, 64 * 1024, path);
    const asleep = new Int32Array(new SharedArrayBuffer(4));
    for (let waited = 0; byOthers() - from < bytes.length && waited < 60_000; waited += 50) Atomics.wait(asleep, 0, 0, 50);
    // A few KiB more: what the worker reads as it starts.
    assert.ok(byOthers() - from >= bytes.length, 'the worker read the whole file while this thread slept');
    assert.deepEqual(await h.digest, createHash('sha256').update(bytes).digest());
    await h.settle();
  });
});

test('a file shorter than length is a FileError that names it; a stop is a CancelledError', async () => {
  await withFile(randomBytes(1000), async (fd, path) => {
    const short = hashFileInWorker(fd, 5000, 512, path);
    await assert.rejects(short.digest, (err: unknown) => err instanceof FileError && err.message.includes(path) && /ends at byte 1000/.test(err.message));
    await short.settle();

    const stop = new AbortController();
    stop.abort();
    const stopped = hashFileInWorker(fd, 1000, 512, path, stop.signal);
    await assert.rejects(stopped.digest, CancelledError);
    await stopped.settle();
  });
});
