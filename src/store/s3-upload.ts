import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  DeleteObjectCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { finished, pipeline, Transform, type Readable } from 'node:stream';
import { answered } from './s3-errors';
import { messageOf } from './streams';

/** Cleaning up after a failed upload may take this long at most, so a dead server cannot hold the caller. */
const CLEANUP_TIMEOUT_MS = 15_000;

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

/**
 * Streams body into one object with lib-storage's Upload, memory bounded by
 * (queueSize + 1) parts. The first failure (signal, body or request) stops
 * every request in flight and the body; once the Upload has settled, its
 * multipart upload is aborted, and an object whose last request went out
 * unanswered is removed, so that nothing is left under the key.
 */
export async function uploadStream(t: UploadTarget, body: Readable, signal?: AbortSignal): Promise<UploadOutcome> {
  const stop = new AbortController();
  let failure: { by: 'signal' | 'body' | 'store'; error: unknown } | undefined;
  const fail = (by: 'signal' | 'body' | 'store', error: unknown) => {
    failure ??= { by, error };
    stop.abort();
  };
  let bytes = 0;
  const feed = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  // Registered before pipeline's own listeners, so a body failure is seen as one before it fails the feed.
  finished(body, (err) => err && fail('body', err));
  pipeline(body, feed, () => undefined);
  stop.signal.addEventListener('abort', () => feed.destroy(new Error('upload stopped')), { once: true });
  const onAbort = () => fail('signal', signal?.reason);
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });

  let mayExist = false;
  // Upload sends its requests without a signal; this view of the client adds
  // ours to each, and notes a final request whose outcome is unknown.
  const sender: S3Client = Object.create(t.client);
  sender.send = ((command: object, options?: object) =>
    t.client.send(command as PutObjectCommand, { ...options, abortSignal: stop.signal }).catch((err: unknown) => {
      const last = command instanceof PutObjectCommand || command instanceof CompleteMultipartUploadCommand;
      if (last && !answered(err)) mayExist = true;
      fail('store', err);
      throw err;
    })) as S3Client['send'];

  const upload = new Upload({
    client: sender,
    params: { Bucket: t.bucket, Key: t.objectKey, Body: feed },
    partSize: t.partSize,
    queueSize: t.queueSize,
    leavePartsOnError: true,
  });
  try {
    await upload.done();
    // Every byte is stored: a signal that came since is too late to matter.
    return { bytes };
  } catch (err) {
    fail('store', err);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  const leftovers = await cleanUp(t, upload.uploadId, mayExist);
  return { ...failure!, leftovers };
}

async function cleanUp(t: UploadTarget, uploadId: string | undefined, mayExist: boolean): Promise<string[]> {
  const leftovers: string[] = [];
  const abortSignal = AbortSignal.timeout(CLEANUP_TIMEOUT_MS);
  const target = { Bucket: t.bucket, Key: t.objectKey };
  if (uploadId) {
    try {
      await t.client.send(new AbortMultipartUploadCommand({ ...target, UploadId: uploadId }), { abortSignal });
    } catch (err) {
      // NoSuchUpload: it completed after all, and the object is removed below.
      if ((err as { name?: string }).name !== 'NoSuchUpload') {
        leftovers.push(`its multipart upload ${uploadId} could not be aborted (${describe(err)}) and keeps its parts until it is aborted or a lifecycle rule removes it`);
      }
    }
  }
  if (mayExist) {
    try {
      await t.client.send(new DeleteObjectCommand(target), { abortSignal });
    } catch (err) {
      leftovers.push(`it may have been stored whole, and removing it failed (${describe(err)})`);
    }
  }
  return leftovers;
}

function describe(err: unknown): string {
  const name = (err as { name?: string }).name;
  return name && name !== 'Error' ? `${name}: ${messageOf(err)}` : messageOf(err);
}
