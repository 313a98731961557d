// The object stores against real storage: a directory, and S3 as a real
// s3rver process spoken to by the real AWS SDK. Every case that makes sense
// for both runs against both.
import { strict as assert } from 'node:assert';
import { createHash, randomBytes } from 'node:crypto';
import * as diagnostics from 'node:diagnostics_channel';
import type { ClientRequest } from 'node:http';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { inspect } from 'node:util';
import { ArchiveError, CancelledError, NotFoundError, ShieldError, StoreError, UsageError } from '../src/errors';
import { DirectoryStore } from '../src/store/directory';
import { S3Store, type S3StoreOptions } from '../src/store/s3';
import type { ObjectStore } from '../src/store/types';
import { makeCerts } from './certs';
import { freePort, makeTestDir, removeTestDir } from './harness';
import { S3RVER_CREDENTIALS, startS3rver, type S3rver } from './s3rver';

const MiB = 1024 * 1024;
const PART_SIZE = 5 * MiB;
const QUEUE_SIZE = 2;
const TIMEOUT = { timeout: 90_000 };

let s3: S3rver;
let root: string;

before(async () => {
  root = makeTestDir();
  s3 = await startS3rver({ bucket: 'test-bucket' });
});

after(async () => {
  await s3?.stop();
  if (root) await removeTestDir(root);
});

// ---------------------------------------------------------------------------
// Bodies

const PATTERN = randomBytes(MiB + 4099);

/**
 * A body made only when read, so what it has produced is what the store
 * has pulled: a store that reads ahead without bound shows it here.
 */
class LazyBody {
  produced = 0;
  private readonly hash = createHash('sha256');
  readonly stream: Readable;

  constructor(
    readonly total: number,
    opts: {
      /** When (a byte count, or a test of the bytes made so far) the body fails, with `failure` or, without one, a bare destroy. */
      failAt?: number | ((produced: number) => boolean);
      failure?: () => Error | undefined;
      onChunk?: (produced: number) => void;
    } = {},
  ) {
    this.stream = new Readable({
      highWaterMark: 64 * 1024,
      read: () => {
        const fails = typeof opts.failAt === 'function' ? opts.failAt(this.produced) : opts.failAt !== undefined && this.produced >= opts.failAt;
        if (fails) {
          this.stream.destroy(opts.failure?.());
          return;
        }
        if (this.produced >= this.total) {
          this.stream.push(null);
          return;
        }
        const at = this.produced % PATTERN.length;
        const chunk = PATTERN.subarray(at, at + Math.min(64 * 1024, this.total - this.produced, PATTERN.length - at));
        this.produced += chunk.length;
        this.hash.update(chunk);
        opts.onChunk?.(this.produced);
        this.stream.push(chunk);
      },
    });
  }

  digest(): string {
    return this.hash.copy().digest('hex');
  }
}

async function digestOf(stream: Readable): Promise<{ digest: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { digest: hash.digest('hex'), bytes };
}

// ---------------------------------------------------------------------------
// The two stores, and what each leaves behind

interface Subject {
  store: ObjectStore;
  /** Bytes of `key` the storage has taken in so far (a part file; parts s3rver received). */
  stored(key: string): number;
  /** Asserts that no object, finished or not, is left under key, and that a failed put said what it could not undo. */
  assertNothingLeft(key: string, err: unknown): Promise<void>;
}

let seq = 0;

function dirSubject(): Subject & { dir: string } {
  const dir = path.join(root, `dir-${++seq}`);
  const store = new DirectoryStore(dir);
  const partsOf = (key: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => n.startsWith(`.${key}.`)) : []);
  return {
    dir,
    store,
    stored: (key) => partsOf(key).reduce((sum, n) => sum + (fs.statSync(path.join(dir, n), { throwIfNoEntry: false })?.size ?? 0), 0),
    assertNothingLeft: async (key) => {
      assert.ok(!(await store.list()).some((o) => o.key === key), `${key} is listed`);
      assert.ok(!fs.existsSync(path.join(dir, key)), `${key} exists`);
      assert.deepEqual(partsOf(key), [], 'a part file was left behind');
    },
  };
}

function s3Subject(extra: Partial<S3StoreOptions> = {}, server: S3rver = s3): Subject & { prefix: string } {
  const prefix = `run-${++seq}/backups`;
  const store = new S3Store({
    bucket: server.bucket,
    prefix,
    endpoint: server.endpoint,
    credentials: S3RVER_CREDENTIALS,
    partSize: PART_SIZE,
    queueSize: QUEUE_SIZE,
    ...extra,
  });
  return {
    prefix,
    store,
    stored: (key) => server.pendingUploadBytes(`${prefix}/${key}`),
    assertNothingLeft: async (key, err) => {
      assert.ok(!(await store.list()).some((o) => o.key === key), `${key} is listed`);
      assert.ok(!fs.existsSync(path.join(server.dir, server.bucket, prefix, `${key}._S3rver_object`)), `s3rver holds ${key}`);
      // s3rver implements neither AbortMultipartUpload (405) nor ListMultipartUploads (501): its
      // uploads directory keeps every upload, so the proof is that each one was asked to abort.
      const uploads = server.pendingUploads(`${prefix}/${key}`);
      for (const id of uploads) {
        assert.match(server.log(), new RegExp(`uploadId=${id}&x-id=AbortMultipartUpload 405`), `upload ${id} was never aborted`);
      }
      if (uploads.length > 0 && err instanceof StoreError) assert.match(err.message, /multipart upload \w+ could not be aborted \(MethodNotAllowed/);
    },
  };
}

const SUBJECTS = { dir: dirSubject, s3: () => s3Subject() } as const;
type Kind = keyof typeof SUBJECTS;
const KINDS = Object.keys(SUBJECTS) as Kind[];

function rejectsWith<E extends ShieldError>(promise: Promise<unknown>, kind: new (...args: never[]) => E): Promise<E> {
  return promise.then(
    () => assert.fail(`expected a ${kind.name}, but it succeeded`),
    (err: unknown) => {
      assert.ok(err instanceof kind, `expected a ${kind.name}, got ${inspect(err)}`);
      return err;
    },
  );
}

// ---------------------------------------------------------------------------
// Both stores

for (const kind of KINDS) {
  test(`${kind}: put, list, read, readBytes, putBytes and remove`, TIMEOUT, async () => {
    const subject = SUBJECTS[kind]();
    const { store } = subject;
    const started = Date.now();
    const archive = new LazyBody(12 * MiB + 123);
    assert.deepEqual(await store.put('archive-1', archive.stream), { bytes: 12 * MiB + 123 });
    const manifest = Buffer.from(JSON.stringify({ name: 'archive-1', at: started }));
    await store.putBytes('manifest-1', manifest);

    const listed = (await store.list()).sort((a, b) => a.key.localeCompare(b.key));
    assert.deepEqual(listed.map((o) => [o.key, o.size]), [['archive-1', 12 * MiB + 123], ['manifest-1', manifest.length]]);
    for (const o of listed) assert.ok(Math.abs(o.modified.getTime() - started) < 60_000, `${o.key} modified ${o.modified.toISOString()}`);

    assert.deepEqual(await digestOf(await store.read('archive-1')), { digest: archive.digest(), bytes: 12 * MiB + 123 });
    assert.deepEqual(await store.readBytes('manifest-1', 1024), manifest);
    const big = await rejectsWith(store.readBytes('archive-1', 1000), StoreError);
    assert.match(big.message, new RegExp(`archive-1 in ${store.url} is over 1000 bytes`));
    const missing = await rejectsWith(store.read('archive-2'), NotFoundError);
    assert.equal(missing.message, `archive-2 does not exist in ${store.url}`);
    await rejectsWith(store.readBytes('archive-2', 10), NotFoundError);

    // A put over an existing key replaces it whole.
    const second = new LazyBody(3 * MiB, { onChunk: () => undefined });
    await store.put('manifest-1', second.stream);
    assert.equal((await digestOf(await store.read('manifest-1'))).digest, second.digest());

    // An empty body is an empty object.
    assert.deepEqual(await store.put('empty', Readable.from([])), { bytes: 0 });
    assert.deepEqual(await store.readBytes('empty', 0), Buffer.alloc(0));
    await store.remove('empty');

    // A read stopped by its signal fails with CancelledError where it is consumed.
    const stop = new AbortController();
    let got = 0;
    const reading = await store.read('archive-1', stop.signal);
    await assert.rejects(async () => {
      for await (const chunk of reading as AsyncIterable<Buffer>) {
        got += chunk.length;
        stop.abort();
      }
    }, CancelledError);
    assert.ok(got > 0 && got < 12 * MiB, `read ${got} bytes`);
    assert.ok(reading.destroyed);

    await store.remove('archive-1');
    await store.remove('archive-1');
    await store.remove('never-there');
    assert.deepEqual((await store.list()).map((o) => o.key), ['manifest-1']);
    await store.check();
    store.close();
  });

  test(`${kind}: a body that fails half-way leaves nothing, and put says why`, TIMEOUT, async (t) => {
    const subject = SUBJECTS[kind]();
    // Fails once the store holds some of it: a part file with data, or a part s3rver received.
    const midway = (key: string) => (produced: number) => produced >= 6 * MiB && subject.stored(key) > 0;

    // A plain error from the stream that feeds the store.
    const broken = new LazyBody(40 * MiB, { failAt: midway('broken'), failure: () => new Error('compressor broke') });
    const err = await rejectsWith(subject.store.put('broken', broken.stream), StoreError);
    assert.ok(broken.produced < 40 * MiB, 'the body never reached its failure');
    assert.match(err.message, new RegExp(`^writing broken to ${subject.store.url} stopped: the data being written failed before its end \\(compressor broke\\)`));
    await subject.assertNothingLeft('broken', err);
    t.diagnostic(`body error: ${err.message}`);

    // One of our own errors keeps its kind.
    const own = new ArchiveError('archive encoder failed');
    const ownBody = new LazyBody(40 * MiB, { failAt: midway('own'), failure: () => own });
    assert.equal(await subject.store.put('own', ownBody.stream).catch((e: unknown) => e), own);
    assert.ok(ownBody.produced < 40 * MiB);
    await subject.assertNothingLeft('own', undefined);

    // Destroyed without an error: still not a complete object.
    const cut = new LazyBody(40 * MiB, { failAt: midway('cut') });
    const cutErr = await rejectsWith(subject.store.put('cut', cut.stream), StoreError);
    assert.ok(cut.produced < 40 * MiB);
    assert.match(cutErr.message, /Premature close/);
    await subject.assertNothingLeft('cut', cutErr);
    assert.deepEqual(await subject.store.list(), []);
  });

  test(`${kind}: an abort mid-put rejects at once with CancelledError and leaves nothing`, TIMEOUT, async (t) => {
    const subject = SUBJECTS[kind]();
    const stop = new AbortController();
    let abortedAt = 0;
    const body = new LazyBody(40 * MiB, {
      onChunk: (produced) => {
        if (produced >= 7 * MiB && !stop.signal.aborted) {
          abortedAt = Date.now();
          stop.abort();
        }
      },
    });
    const err = await rejectsWith(subject.store.put('stopped', body.stream, stop.signal), CancelledError);
    const took = Date.now() - abortedAt;
    assert.ok(abortedAt > 0, 'the abort never fired');
    assert.ok(took < 5000, `put took ${took} ms to give up after the abort`);
    assert.ok(body.produced < 40 * MiB, 'the whole body was read despite the abort');
    assert.ok(body.stream.destroyed, 'the body was not destroyed');
    assert.match(err.message, new RegExp(`^stopped by a signal while writing stopped to ${subject.store.url}`));
    await subject.assertNothingLeft('stopped', err);
    t.diagnostic(`abort: ${err.message} (${took} ms)`);

    // Already aborted: nothing is read.
    const early = new LazyBody(MiB);
    await rejectsWith(subject.store.put('early', early.stream, AbortSignal.abort()), CancelledError);
    assert.equal(early.produced, 0);
    assert.ok(early.stream.destroyed);
  });

  test(`${kind}: a 40 MiB put pulls its body no faster than it stores it`, TIMEOUT, async (t) => {
    const subject = SUBJECTS[kind]();
    const total = 40 * MiB;
    // s3: the part being filled plus queueSize parts in flight (its only buffers), and a chunk of slack.
    const bound = kind === 's3' ? PART_SIZE * (QUEUE_SIZE + 1) + MiB : 8 * MiB;
    const base = process.memoryUsage();
    let ahead = 0;
    let peakRss = base.rss;
    let peakBuffers = base.arrayBuffers;
    let nextSample = 0;
    const body = new LazyBody(total, {
      onChunk: (produced) => {
        if (produced < nextSample) return;
        nextSample = produced + MiB;
        ahead = Math.max(ahead, produced - subject.stored('big'));
        const now = process.memoryUsage();
        peakRss = Math.max(peakRss, now.rss);
        peakBuffers = Math.max(peakBuffers, now.arrayBuffers);
      },
    });
    assert.deepEqual(await subject.store.put('big', body.stream), { bytes: total });
    assert.ok(ahead > 0, 'never sampled');
    assert.ok(ahead < bound, `the store pulled ${(ahead / MiB).toFixed(1)} MiB more than it had stored (bound ${bound / MiB} MiB)`);
    t.diagnostic(
      `most pulled but not yet stored ${(ahead / MiB).toFixed(1)} MiB (bound ${bound / MiB} MiB); ` +
        `rss ${(base.rss / MiB).toFixed(0)} -> peak ${(peakRss / MiB).toFixed(0)} MiB; ` +
        `Buffers ${(base.arrayBuffers / MiB).toFixed(0)} -> peak ${(peakBuffers / MiB).toFixed(0)} MiB`,
    );
    assert.deepEqual(await digestOf(await subject.store.read('big')), { digest: body.digest(), bytes: total });
  });

  test(`${kind}: two puts at once to different keys both succeed`, TIMEOUT, async () => {
    const { store } = SUBJECTS[kind]();
    const a = new LazyBody(11 * MiB);
    const b = new LazyBody(7 * MiB + 5);
    await Promise.all([store.put('a', a.stream), store.put('b', b.stream)]);
    const listed = (await store.list()).map((o) => [o.key, o.size]).sort();
    assert.deepEqual(listed, [['a', 11 * MiB], ['b', 7 * MiB + 5]]);
    assert.equal((await digestOf(await store.read('a'))).digest, a.digest());
    assert.equal((await digestOf(await store.read('b'))).digest, b.digest());
  });

  test(`${kind}: keys must be plain names`, TIMEOUT, async () => {
    const { store } = SUBJECTS[kind]();
    for (const key of ['', 'a/b', '.hidden', '..', 'tab\there']) {
      const body = new LazyBody(10);
      await rejectsWith(store.put(key, body.stream), UsageError);
      assert.ok(body.stream.destroyed, `the body of ${JSON.stringify(key)} was left open`);
      await rejectsWith(store.putBytes(key, Buffer.from('x')), UsageError);
      await rejectsWith(store.read(key), UsageError);
      await rejectsWith(store.remove(key), UsageError);
    }
  });
}

// ---------------------------------------------------------------------------
// The directory store

test('dir: check and list report a missing directory; put creates it', TIMEOUT, async (t) => {
  const dir = path.join(root, `dir-${++seq}`, 'nested', 'deeper');
  const store = new DirectoryStore(dir);
  assert.equal(store.url, `file://${dir}`);
  const err = await rejectsWith(store.check(), StoreError);
  assert.equal(err.message, `file://${dir} does not exist`);
  assert.match(err.hint, /create the directory/);
  await rejectsWith(store.list(), StoreError);
  t.diagnostic(`missing dir: ${err.message} (hint: ${err.hint})`);

  await store.putBytes('first', Buffer.from('one'));
  await store.check();
  // Only finished, plain, regular files are objects.
  fs.writeFileSync(path.join(dir, '.first.123.part'), 'unfinished');
  fs.mkdirSync(path.join(dir, 'subdir'));
  fs.writeFileSync(path.join(dir, 'subdir', 'inner'), 'x');
  assert.deepEqual((await store.list()).map((o) => o.key), ['first']);
  // The part file is an unfinished write of `first`; other hidden files are not.
  fs.writeFileSync(path.join(dir, '.DS_Store'), 'x');
  fs.writeFileSync(path.join(dir, '.ab.1.part'), 'x');
  const unfinished = await store.unfinished();
  assert.deepEqual(unfinished.map((w) => [w.id, w.key, w.size]).sort(), [['.ab.1.part', 'ab', 1], ['.first.123.part', 'first', 10]]);
  await rejectsWith(store.discard({ ...unfinished[0]!, id: '../first' }), StoreError);
  await rejectsWith(store.discard({ ...unfinished[0]!, id: 'first' }), StoreError);
  await store.discard(unfinished.find((w) => w.key === 'first')!);
  await store.discard(unfinished.find((w) => w.key === 'first')!); // already gone: not an error
  assert.deepEqual((await store.unfinished()).map((w) => w.id), ['.ab.1.part']);
  assert.deepEqual((await store.list()).map((o) => o.key), ['first']);

  const file = path.join(root, `file-${++seq}`);
  fs.writeFileSync(file, 'not a directory');
  await rejectsWith(new DirectoryStore(file).check(), StoreError);
  await rejectsWith(new DirectoryStore(path.join(file, 'below')).putBytes('x', Buffer.from('x')), StoreError);
});

// ---------------------------------------------------------------------------
// S3 only

test('s3: objects beside or below the prefix are not listed', TIMEOUT, async () => {
  const subject = s3Subject();
  const below = new S3Store({ bucket: s3.bucket, prefix: `${subject.prefix}/deeper`, endpoint: s3.endpoint, credentials: S3RVER_CREDENTIALS });
  const beside = new S3Store({ bucket: s3.bucket, prefix: `${subject.prefix}x`, endpoint: s3.endpoint, credentials: S3RVER_CREDENTIALS });
  await below.putBytes('inner', Buffer.from('x'));
  await beside.putBytes('sibling', Buffer.from('x'));
  await subject.store.putBytes('mine', Buffer.from('x'));
  assert.deepEqual((await subject.store.list()).map((o) => o.key), ['mine']);
  assert.deepEqual((await below.list()).map((o) => o.key), ['inner']);
  const top = new S3Store({ bucket: s3.bucket, prefix: '', endpoint: s3.endpoint, credentials: S3RVER_CREDENTIALS });
  assert.equal(top.url, `s3://${s3.bucket}`);
  assert.ok(!(await top.list()).some((o) => o.key.includes('/')));
  for (const s of [subject.store, below, beside, top]) s.close();
});

test('s3: a stop while S3 starts the multipart upload still aborts that upload', TIMEOUT, async (t) => {
  const subject = s3Subject();
  const key = 'mid-create';
  const stop = new AbortController();
  let hit = false;
  // The stop comes once S3 has started the upload but before its answer is read: the event loop is
  // held until s3rver's uploads directory shows it, so the answer cannot be handled first.
  const onStart = (message: unknown) => {
    const { request } = message as { request: ClientRequest };
    if (hit || request.method !== 'POST' || !request.path.includes(`/${subject.prefix}/${key}?uploads`)) return;
    request.once('finish', () => {
      const deadline = Date.now() + 10_000;
      while (s3.pendingUploads(`${subject.prefix}/${key}`).length === 0 && Date.now() < deadline);
      hit = s3.pendingUploads(`${subject.prefix}/${key}`).length === 1;
      stop.abort();
    });
  };
  diagnostics.subscribe('http.client.request.start', onStart);
  let err: CancelledError;
  try {
    err = await rejectsWith(subject.store.put(key, new LazyBody(40 * MiB).stream, stop.signal), CancelledError);
  } finally {
    diagnostics.unsubscribe('http.client.request.start', onStart);
  }
  assert.ok(hit, 'the stop never came between S3 starting the upload and its answer');
  assert.equal(s3.pendingUploads(`${subject.prefix}/${key}`).length, 1, 'S3 started no upload, so there was nothing to abort');
  // s3rver logs a request just after answering it.
  for (let i = 0; i < 50 && !/AbortMultipartUpload 405/.test(s3.log()); i++) await new Promise((r) => setTimeout(r, 20));
  await subject.assertNothingLeft(key, err);
  // s3rver cannot abort (405): the operator is told which upload keeps its parts.
  assert.match(err.message, /multipart upload \w+ could not be aborted \(MethodNotAllowed/);
  assert.equal(err.leftovers.length, 1);
  t.diagnostic(err.message);
});

test('s3: up to one part is one PutObject; one byte more is a multipart upload of two parts; both read back exact', TIMEOUT, async () => {
  const { store, prefix } = s3Subject();
  const requests = (key: string) => s3.log().split('\n').filter((l) => l.includes(`/${prefix}/${key}?`) || l.includes(`/${prefix}/${key} `));
  for (const [key, size] of [['empty', 0], ['small', 1000], ['one-part', PART_SIZE], ['two-parts', PART_SIZE + 1], ['three-parts', 2 * PART_SIZE + 77]] as const) {
    const body = new LazyBody(size);
    assert.deepEqual(await store.put(key, body.stream), { bytes: size });
    assert.deepEqual(await digestOf(await store.read(key)), { digest: body.digest(), bytes: size }, key);
    // s3rver logs each request once it has answered it, a moment after our client saw the answer.
    for (let i = 0; i < 50 && !requests(key).some((l) => / 200 /.test(l)); i++) await new Promise((r) => setTimeout(r, 20));
    const parts = requests(key).filter((l) => /x-id=UploadPart\b/.test(l)).length;
    const puts = requests(key).filter((l) => /x-id=PutObject\b/.test(l)).length;
    const expected = Math.ceil(size / PART_SIZE);
    if (expected <= 1) assert.deepEqual({ puts, parts }, { puts: 1, parts: 0 }, `${key}: ${requests(key).join('\n')}`);
    else assert.deepEqual({ puts, parts }, { puts: 0, parts: expected }, `${key}: ${requests(key).join('\n')}`);
  }
  store.close();
});

test('s3: a listing longer than a page is listed whole', TIMEOUT, async () => {
  const { store } = s3Subject();
  const keys = Array.from({ length: 1010 }, (_, i) => `obj-${String(i).padStart(4, '0')}`);
  for (let i = 0; i < keys.length; i += 20) await Promise.all(keys.slice(i, i + 20).map((k) => store.putBytes(k, Buffer.from(k))));
  const listed = (await store.list()).map((o) => o.key).sort();
  assert.equal(listed.length, keys.length);
  assert.deepEqual(listed, keys);
  store.close();
});

test('s3: a read cut off by s3rver\'s death fails as a StoreError where it is consumed', TIMEOUT, async (t) => {
  const server = await startS3rver({ bucket: 'cut-bucket' });
  try {
    const { store } = s3Subject({}, server);
    await store.put('big', new LazyBody(64 * MiB).stream);
    const reading = await store.read('big');
    let got = 0;
    const err = await rejectsWith(
      (async () => {
        for await (const chunk of reading as AsyncIterable<Buffer>) {
          got += chunk.length;
          if (got >= MiB && server.proc.signalCode === null) await server.kill();
        }
      })(),
      StoreError,
    );
    assert.equal(server.proc.signalCode, 'SIGKILL');
    assert.ok(got < 64 * MiB, 'the whole object arrived before s3rver died');
    assert.match(err.message, new RegExp(`S3 endpoint ${server.endpoint}|reading big from ${store.url}`));
    t.diagnostic(`read cut off after ${(got / MiB).toFixed(1)} MiB: ${err.message}`);
  } finally {
    await server.stop();
  }
});

test('s3: s3rver killed mid-upload: put fails naming the endpoint, and a new s3rver on its data shows no object', TIMEOUT, async (t) => {
  const server = await startS3rver({ bucket: 'killed-bucket' });
  let restarted: S3rver | undefined;
  try {
    const subject = s3Subject({}, server);
    let killing: Promise<void> | undefined;
    const body = new LazyBody(40 * MiB, {
      onChunk: (produced) => {
        if (produced >= 12 * MiB) killing ??= server.kill();
      },
    });
    const started = Date.now();
    const err = await rejectsWith(subject.store.put('victim', body.stream), StoreError);
    await killing;
    assert.equal(server.proc.signalCode, 'SIGKILL', 's3rver was not killed');
    assert.ok(body.produced < 40 * MiB, 'the whole body was read after s3rver died');
    assert.ok(Date.now() - started < 30_000);
    assert.match(err.message, new RegExp(`(cannot reach|lost the connection to) the S3 endpoint ${server.endpoint}`));
    t.diagnostic(`killed: ${err.message}`);

    restarted = await startS3rver({ bucket: 'killed-bucket', dir: server.dir });
    const after = new S3Store({ bucket: 'killed-bucket', prefix: subject.prefix, endpoint: restarted.endpoint, credentials: S3RVER_CREDENTIALS });
    assert.deepEqual(await after.list(), []);
    assert.ok(!fs.existsSync(path.join(server.dir, 'killed-bucket', subject.prefix, 'victim._S3rver_object')));
    t.diagnostic(`unfinished uploads s3rver still holds after the restart: ${restarted.pendingUploads(`${subject.prefix}/victim`).length}`);
    after.close();
  } finally {
    await restarted?.kill();
    await server.stop();
  }
});

test('s3: a wrong access key id is refused with a message about credentials that never holds the secret', TIMEOUT, async (t) => {
  const secret = 'wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY';
  const { store } = s3Subject({ credentials: { accessKeyId: 'NOT-A-KEY', secretAccessKey: secret } });
  const failures = [
    await rejectsWith(store.check(), StoreError),
    await rejectsWith(store.list(), StoreError),
    await rejectsWith(store.put('x', new LazyBody(MiB).stream), StoreError),
    await rejectsWith(store.putBytes('x', Buffer.from('x')), StoreError),
    await rejectsWith(store.read('x'), StoreError),
  ];
  for (const err of failures) {
    assert.match(err.message, new RegExp(`^S3 refused the credentials or access while [a-z]+ (x (to|from) )?${store.url} \\(InvalidAccessKeyId: `));
    assert.match(err.hint, /AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/);
    assert.ok(!inspect(err, { depth: 10 }).includes(secret), 'the secret is in the error');
  }
  t.diagnostic(`wrong key: ${failures[0]!.message} (hint: ${failures[0]!.hint})`);
});

test('s3: a missing bucket is named with its endpoint', TIMEOUT, async (t) => {
  const store = new S3Store({ bucket: 'no-such-bucket', prefix: 'x', endpoint: s3.endpoint, credentials: S3RVER_CREDENTIALS });
  const err = await rejectsWith(store.check(), StoreError);
  assert.equal(err.message, `bucket no-such-bucket does not exist at ${s3.endpoint}`);
  const body = new LazyBody(MiB);
  const put = await rejectsWith(store.put('x', body.stream), StoreError);
  assert.match(put.message, /^bucket no-such-bucket does not exist at /);
  assert.ok(body.stream.destroyed);
  t.diagnostic(`missing bucket: ${err.message} (hint: ${err.hint})`);
});

test('s3: an endpoint nobody listens on is named', TIMEOUT, async (t) => {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const store = new S3Store({ bucket: 'b', prefix: '', endpoint, credentials: S3RVER_CREDENTIALS });
  const started = Date.now();
  const err = await rejectsWith(store.list(), StoreError);
  assert.match(err.message, new RegExp(`^cannot reach the S3 endpoint ${endpoint} \\(connect ECONNREFUSED 127\\.0\\.0\\.1:${port}\\)$`));
  const body = new LazyBody(12 * MiB);
  const put = await rejectsWith(store.put('x', body.stream), StoreError);
  assert.match(put.message, new RegExp(`^cannot reach the S3 endpoint ${endpoint}`));
  assert.ok(body.stream.destroyed);
  assert.ok(Date.now() - started < 20_000);
  t.diagnostic(`unreachable: ${err.message} (hint: ${err.hint})`);
});

test('s3: https with a private CA: trusted through caFile only', TIMEOUT, async (t) => {
  const certs = await makeCerts(path.join(root, `certs-${++seq}`));
  const server = await startS3rver({ bucket: 'tls-bucket', tls: { cert: certs.serverCert, key: certs.serverKey } });
  try {
    assert.match(server.endpoint, /^https:/);
    const options = { bucket: 'tls-bucket', prefix: 'p', endpoint: server.endpoint, credentials: S3RVER_CREDENTIALS };
    const trusted = new S3Store({ ...options, caFile: certs.caCert });
    await trusted.putBytes('m', Buffer.from('over tls'));
    assert.deepEqual(await trusted.readBytes('m', 100), Buffer.from('over tls'));
    const body = new LazyBody(6 * MiB);
    await trusted.put('big', body.stream);
    assert.equal((await digestOf(await trusted.read('big'))).digest, body.digest());
    trusted.close();

    for (const caFile of [undefined, certs.otherCaCert]) {
      const err = await rejectsWith(new S3Store({ ...options, caFile }).list(), StoreError);
      assert.match(err.message, new RegExp(`^cannot verify the TLS certificate of the S3 endpoint ${server.endpoint} \\(`));
      t.diagnostic(`untrusted (${caFile ? 'other CA' : 'system CAs'}): ${err.message}`);
    }
    const plain = await rejectsWith(new S3Store({ ...options, endpoint: s3.endpoint.replace('http:', 'https:') }).list(), StoreError);
    assert.equal(plain.message, `the TLS handshake with the S3 endpoint ${s3.endpoint.replace('http:', 'https:')} failed (wrong version number)`);
    t.diagnostic(`https to a plain server: ${plain.message}`);
    assert.throws(() => new S3Store({ ...options, caFile: certs.serverKey }), (e: unknown) => e instanceof StoreError && /holds no PEM certificate/.test(e.message));
    assert.throws(() => new S3Store({ ...options, caFile: path.join(root, 'nope.pem') }), (e: unknown) => e instanceof StoreError && /cannot read the CA file/.test(e.message));
  } finally {
    await server.stop();
  }
});

/** Runs fn with exactly these AWS_* variables (the SDK's own environment chain), restoring them after. */
async function withAwsEnv(vars: Record<string, string>, fn: () => Promise<void>): Promise<void> {
  const saved = Object.entries(process.env).filter(([k]) => k.startsWith('AWS_'));
  for (const [k] of saved) delete process.env[k];
  // No profile files and no instance metadata: only what the test sets.
  Object.assign(process.env, {
    AWS_CONFIG_FILE: path.join(root, 'no-aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: path.join(root, 'no-aws-credentials'),
    AWS_EC2_METADATA_DISABLED: 'true',
    ...vars,
  });
  try {
    await fn();
  } finally {
    for (const k of Object.keys(process.env)) if (k.startsWith('AWS_')) delete process.env[k];
    Object.assign(process.env, Object.fromEntries(saved));
  }
}

test('s3: endpoint, region and credentials from the SDK\'s environment chain', TIMEOUT, async (t) => {
  const prefix = `env-${++seq}`;
  // The SDK reads AWS_ENDPOINT_URL_S3 itself; with no region anywhere, a custom endpoint gets us-east-1.
  await withAwsEnv({ AWS_ENDPOINT_URL_S3: s3.endpoint, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' }, async () => {
    const store = new S3Store({ bucket: s3.bucket, prefix });
    await store.putBytes('from-env', Buffer.from('x'));
    assert.deepEqual((await store.list()).map((o) => o.key), ['from-env']);
    store.close();
  });
  assert.ok(fs.existsSync(path.join(s3.dir, s3.bucket, prefix, 'from-env._S3rver_object')), 'the object did not reach s3rver');
  await withAwsEnv({ AWS_ENDPOINT_URL: s3.endpoint, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' }, async () => {
    assert.deepEqual((await new S3Store({ bucket: s3.bucket, prefix }).list()).map((o) => o.key), ['from-env']);
  });

  await withAwsEnv({ AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' }, async () => {
    const err = await rejectsWith(new S3Store({ bucket: s3.bucket, prefix }).check(), StoreError);
    assert.equal(err.message, `no AWS region is configured for s3://${s3.bucket}/${prefix}`);
    t.diagnostic(`no region: ${err.message} (hint: ${err.hint})`);
  });

  await withAwsEnv({ AWS_REGION: 'eu-west-1' }, async () => {
    const err = await rejectsWith(new S3Store({ bucket: s3.bucket, prefix, endpoint: s3.endpoint }).list(), StoreError);
    assert.match(err.message, new RegExp(`^no AWS credentials found for s3://${s3.bucket}/${prefix} \\(`));
    assert.match(err.hint, /AWS_ACCESS_KEY_ID/);
    t.diagnostic(`no credentials: ${err.message} (hint: ${err.hint})`);
  });
});
