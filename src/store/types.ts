import type { Readable } from 'node:stream';

/** One object directly under a store's path; `key` is relative to that path. */
export interface StoredObject {
  key: string;
  size: number;
  modified: Date;
}

/** What a run killed outright (SIGKILL, the OOM killer, a power cut) left behind: a directory store's part file. */
export interface UnfinishedWrite {
  /** The store's own name for it (a part file's name). */
  id: string;
  /** The object it was writing. */
  key: string;
  size: number;
  /** When it was last written to. */
  modified: Date;
}

/**
 * Where backups live: a directory or an S3 prefix. Keys are plain names
 * (no "/", no leading ".": a UsageError otherwise), relative to the store's
 * own path, so several clusters and prefixes can share a bucket, each under
 * its own path. Every failure is a StoreError naming the store (never its
 * credentials), but for a missing object (NotFoundError), a fired signal
 * (CancelledError) and a put's failed body (its own error).
 */
export interface ObjectStore {
  /** The store as an operator would write it (file:///abs/dir, s3://bucket/prefix), without secrets. */
  readonly url: string;
  /** Throws a StoreError unless the store exists and may be listed. */
  check(signal?: AbortSignal): Promise<void>;
  /**
   * Makes the store ready to take objects (a directory is created) and
   * throws the StoreError a write would meet there now: for a run that has
   * long work to do before its first write.
   */
  prepare(signal?: AbortSignal): Promise<void>;
  /** Every finished object directly under the store's path, in no particular order; never parts of unfinished writes. */
  list(signal?: AbortSignal): Promise<StoredObject[]>;
  /** The whole object as a stream; a NotFoundError if it is missing. Failures while streaming arrive typed, as the stream's error. */
  read(key: string, signal?: AbortSignal): Promise<Readable>;
  /** A small object (a manifest) whole; refuses one over maxBytes. */
  readBytes(key: string, maxBytes: number, signal?: AbortSignal): Promise<Buffer>;
  /**
   * Streams body into the object `key` with bounded memory. The object
   * appears only once body ended and every byte is stored (a directory:
   * part file, fsync, rename; S3: multipart upload completed). If body
   * errors, signal aborts or the store fails, nothing appears under key,
   * a multipart upload is aborted, and this rejects. body is consumed, and
   * destroyed if the put fails. A signal that fires once every byte is
   * stored is too late to undo it.
   */
  put(key: string, body: Readable, signal?: AbortSignal): Promise<{ bytes: number }>;
  /** A small object written whole (a manifest): it appears complete or not at all. */
  putBytes(key: string, data: Buffer, signal?: AbortSignal): Promise<void>;
  /** Removes the object; removing a missing one is not an error. */
  remove(key: string, signal?: AbortSignal): Promise<void>;
  /**
   * Writes that runs killed outright left behind, which a run that fails or
   * is stopped removes itself. Only a directory store has them: an S3
   * multipart upload left unfinished is the bucket's lifecycle rule's to
   * clear (AbortIncompleteMultipartUpload).
   */
  unfinished?(signal?: AbortSignal): Promise<UnfinishedWrite[]>;
  /** Removes one of them; a missing one is not an error. */
  discard?(write: UnfinishedWrite, signal?: AbortSignal): Promise<void>;
  /** Releases connections. */
  close(): void;
}
