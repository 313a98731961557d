import {
  AbortMultipartUploadCommand,
  ChecksumAlgorithm,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { CancelledError, StoreError } from '../errors';
import { abortable } from '../util/abortable';
import { answered } from './s3-errors';
import { messageOf } from './streams';

/** Cleaning up after a failed upload may take this long at most, so a dead server cannot hold the caller. */
const CLEANUP_TIMEOUT_MS = 15_000;
/** S3's limit on the parts of one object. */
const MAX_PARTS = 10_000;
/** The first part buffer starts this small and doubles, so a small object (a change-log segment) costs little more than itself. */
const FIRST_BUFFER_BYTES = 256 * 1024;

export interface UploadTarget {
  client: S3Client;
  bucket: string;
  objectKey: string;
  partSize: number;
  queueSize: number;
}

export type UploadOutcome =
  | { bytes: number }
  | {
      /** What failed first: the caller's signal, the body, or S3 (or the way to it). */
      by: 'signal' | 'body' | 'store';
      error: unknown;
      /** What the clean-up could not undo, in words for the operator. */
      leftovers: string[];
    };

type Failure = { by: 'signal' | 'body' | 'store'; error: unknown };

/**
 * Streams body into one object. Bytes are copied into queueSize + 1 part
 * buffers that are reused for the whole upload: one being filled while up to
 * queueSize parts are sent, and the body is not read while none is free.
 * lib-storage's Upload joins the stream's chunks into a new Buffer for each
 * part instead: a copy and an allocation per part that only the collector
 * takes back (docs/performance.md, "Stores").
 *
 * An object that fits in one part is one PutObject; a larger one is a
 * multipart upload. The first failure (signal, body or request) stops every
 * request in flight and the body; the multipart upload is then aborted, and
 * an object whose final request went out unanswered is removed, so that
 * nothing is left under the key.
 */
export async function uploadStream(t: UploadTarget, body: Readable, signal?: AbortSignal): Promise<UploadOutcome> {
  const upload = new PartUploader(t);
  const onAbort = () => upload.fail('signal', signal?.reason);
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  // With an error: a writer waiting for the body to drain must see it fail, not wait for an event that never comes.
  upload.stopped.addEventListener('abort', () => body.destroy(new Error('upload stopped')), { once: true });
  try {
    await upload.run(body);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  // Every byte is stored once run() ends without a failure: a signal that came since is too late to matter.
  if (!upload.failure) return { bytes: upload.bytes };
  return { ...upload.failure, leftovers: await upload.cleanUp() };
}

class PartUploader {
  failure: Failure | undefined;
  bytes = 0;
  private readonly stop = new AbortController();
  readonly stopped = this.stop.signal;
  /** CreateMultipartUpload, once sent: never cancelled, so that its upload can be aborted. */
  private creating: Promise<string> | undefined;
  private readonly target: { Bucket: string; Key: string };
  private uploadId: string | undefined;
  /** A final request (PutObject, Complete) got no answer: the object may exist. */
  private mayExist = false;
  private readonly parts: CompletedPart[] = [];
  private readonly free: Buffer[] = [];
  /** Part buffers made so far: at most queueSize + 1. */
  private buffers = 0;
  private readonly sending = new Set<Promise<void>>();
  /** The buffer being filled, and how far. */
  private current: Buffer | undefined;
  private filled = 0;
  private partNumber = 0;

  constructor(private readonly t: UploadTarget) {
    this.target = { Bucket: t.bucket, Key: t.objectKey };
  }

  fail(by: Failure['by'], error: unknown): void {
    this.failure ??= { by, error };
    this.stop.abort();
  }

  async run(body: Readable): Promise<void> {
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        if (this.failure) break;
        await this.take(chunk);
        if (this.failure) break;
      }
    } catch (err) {
      this.fail(this.failure ? this.failure.by : 'body', err);
    }
    if (this.failure) return void (await this.settle());
    try {
      if (this.uploadId === undefined) await this.putWhole();
      else await this.complete();
    } catch (err) {
      this.fail('store', err);
    }
  }

  /** Copies chunk into part buffers; a full one is sent once more bytes follow it, so an object of one part is one PutObject. */
  private async take(chunk: Buffer): Promise<void> {
    this.bytes += chunk.length;
    for (let at = 0; at < chunk.length && !this.failure; ) {
      if (this.current && this.filled === this.t.partSize) await this.sendCurrent();
      if (this.failure) return;
      this.current ??= this.buffer();
      if (this.filled + (chunk.length - at) > this.current.length && this.current.length < this.t.partSize) this.grow(this.filled + chunk.length - at);
      const n = chunk.copy(this.current, this.filled, at, Math.min(chunk.length, at + this.current.length - this.filled));
      this.filled += n;
      at += n;
    }
  }

  /** A free part buffer (sendCurrent keeps at most queueSize in flight, so one is free or may be made); the very first starts small. */
  private buffer(): Buffer {
    const buf = this.free.pop();
    if (buf) return buf;
    this.buffers++;
    return Buffer.allocUnsafeSlow(this.buffers === 1 ? Math.min(FIRST_BUFFER_BYTES, this.t.partSize) : this.t.partSize);
  }

  private grow(need: number): void {
    let size = this.current!.length;
    while (size < need && size < this.t.partSize) size *= 2;
    const bigger = Buffer.allocUnsafeSlow(Math.min(size, this.t.partSize));
    this.current!.copy(bigger, 0, 0, this.filled);
    this.current = bigger;
  }

  private async sendCurrent(): Promise<void> {
    const buf = this.current!;
    const length = this.filled;
    this.current = undefined;
    this.filled = 0;
    const number = ++this.partNumber;
    if (number > MAX_PARTS) {
      return this.fail(
        'store',
        new StoreError(
          `${this.t.objectKey} would need more than ${MAX_PARTS} parts of ${this.t.partSize} bytes, more than S3 takes in one object`,
          'back up the keyspace in parts, one prefix each (--prefix), or into a directory store',
        ),
      );
    }
    if (this.uploadId === undefined) {
      // Not stopped mid-flight: an upload S3 started but whose id we never heard of could not be aborted.
      // A stop waits no longer for it here; cleanUp waits a while for the id, then aborts the upload.
      this.creating = this.create();
      try {
        const id = await abortable(this.creating, this.stopped, 'starting the multipart upload');
        if (this.failure) return;
        this.uploadId = id;
      } catch (err) {
        // A stop has already set the failure, which this does not replace.
        return this.fail('store', err);
      }
    }
    // The body waits here (and is not read) while queueSize parts are in flight.
    while (this.sending.size >= this.t.queueSize && !this.failure) await Promise.race(this.sending);
    if (this.failure) return;
    const sent = this.t.client
      .send(new UploadPartCommand({ ...this.target, UploadId: this.uploadId, PartNumber: number, Body: buf.subarray(0, length), ContentLength: length }), {
        abortSignal: this.stopped,
      })
      .then((r) => {
        if (!r.ETag) throw new StoreError(`S3 stored part ${number} of ${this.t.objectKey} but sent no ETag for it`, 'the server is not S3-compatible enough; check its version');
        this.parts[number - 1] = {
          PartNumber: number,
          ETag: r.ETag,
          ChecksumCRC32: r.ChecksumCRC32,
          ChecksumCRC32C: r.ChecksumCRC32C,
          ChecksumSHA1: r.ChecksumSHA1,
          ChecksumSHA256: r.ChecksumSHA256,
        };
      })
      .catch((err: unknown) => this.fail('store', err))
      .finally(() => {
        this.free.push(buf);
        this.sending.delete(sent);
      });
    this.sending.add(sent);
  }

  private async create(): Promise<string> {
    // As lib-storage does: with checksums on (the SDK's default), parts carry CRC32s, which the upload must be declared for.
    const calculation = await this.t.client.config.requestChecksumCalculation();
    const created = await this.t.client.send(
      new CreateMultipartUploadCommand({ ...this.target, ChecksumAlgorithm: calculation === 'WHEN_SUPPORTED' ? ChecksumAlgorithm.CRC32 : undefined }),
    );
    if (!created.UploadId) throw new StoreError(`S3 started no multipart upload for ${this.t.objectKey} (no upload id)`, 'the server is not S3-compatible enough; check its version');
    return created.UploadId;
  }

  private async putWhole(): Promise<void> {
    const data = this.current?.subarray(0, this.filled) ?? Buffer.alloc(0);
    await this.sendFinal(new PutObjectCommand({ ...this.target, Body: data, ContentLength: data.length }));
  }

  private async complete(): Promise<void> {
    if (this.filled > 0) await this.sendCurrent();
    await this.settle();
    if (this.failure) return;
    await this.sendFinal(new CompleteMultipartUploadCommand({ ...this.target, UploadId: this.uploadId, MultipartUpload: { Parts: this.parts } }));
  }

  private async settle(): Promise<void> {
    await Promise.all(this.sending);
  }

  private async sendFinal(command: PutObjectCommand | CompleteMultipartUploadCommand): Promise<void> {
    try {
      await this.t.client.send(command as PutObjectCommand, { abortSignal: this.stopped });
    } catch (err) {
      if (!answered(err)) this.mayExist = true;
      throw err;
    }
  }

  /** Undoes what a failed upload left: its multipart upload, and an object its final request may have made. */
  async cleanUp(): Promise<string[]> {
    const leftovers: string[] = [];
    const abortSignal = AbortSignal.timeout(CLEANUP_TIMEOUT_MS);
    if (this.uploadId === undefined && this.creating) {
      try {
        this.uploadId = await abortable(this.creating, abortSignal, 'waiting for the multipart upload to start');
      } catch (err) {
        // Its own failure means no upload was started; only an answer that never came may have left one.
        if (err instanceof CancelledError) {
          leftovers.push(`a multipart upload it may have started was not confirmed within ${CLEANUP_TIMEOUT_MS / 1000} s and may keep its parts until a lifecycle rule removes it`);
        }
      }
    }
    if (this.uploadId) {
      try {
        await this.t.client.send(new AbortMultipartUploadCommand({ ...this.target, UploadId: this.uploadId }), { abortSignal });
      } catch (err) {
        // NoSuchUpload: it completed after all, and the object is removed below.
        if ((err as { name?: string }).name !== 'NoSuchUpload') {
          leftovers.push(`its multipart upload ${this.uploadId} could not be aborted (${describe(err)}) and keeps its parts until it is aborted or a lifecycle rule removes it`);
        }
      }
    }
    if (this.mayExist) {
      try {
        await this.t.client.send(new DeleteObjectCommand(this.target), { abortSignal });
      } catch (err) {
        leftovers.push(`it may have been stored whole, and removing it failed (${describe(err)})`);
      }
    }
    return leftovers;
  }
}

function describe(err: unknown): string {
  const name = (err as { name?: string }).name;
  return name && name !== 'Error' ? `${name}: ${messageOf(err)}` : messageOf(err);
}
