import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type ArchiveObserver, type ArchiveSummary, VerifyingStage } from '../archive/verify';
import type { BackupEntry } from '../catalogue/catalogue';
import { ArchiveError, CancelledError, EncryptionError, FileError, ShieldError, StoreError } from '../errors';
import { privateCopy } from '../io/spool';
import { TEMP_ROOM_HINT } from '../io/tempdir';
import { Digest } from '../pipeline/digest';
import { NoIdentityMatched, OTHER_RECIPIENTS } from '../pipeline/encryption';
import { openStored } from '../pipeline/stages';
import type { ObjectStore } from '../store/types';

export interface FetchedArchive {
  /** A private file in the caller's dir. */
  path: string;
  /** The archive's own checks, made on the way in with `scope` as verifyArchive would (none for an etcd snapshot). */
  verified?: ArchiveSummary;
}

/**
 * Downloads a backup's archive, checks the stored bytes against the
 * manifest (size and sha256) as they arrive, decrypts and decompresses
 * them into a private file in dir, verifying the archive on the way.
 * Anything short, altered, undecryptable or damaged throws (in that
 * order of precedence) before the caller reads a byte of it.
 */
export async function fetchArchive(
  store: ObjectStore,
  b: BackupEntry,
  identities: string[],
  dir: string,
  signal?: AbortSignal,
  scope = '',
  /** Sees the archive's items and records on the same pass (VerifyingStage). */
  observer?: ArchiveObserver,
): Promise<FetchedArchive> {
  const path = join(dir, 'archive');
  const copy = privateCopy(path);
  // A local copy that does not fit says nothing about the backup, and the store is not to blame.
  let local: Error | undefined;
  copy.once('error', (e) => (local = e));
  try {
    return { path, verified: await download(store, b, identities, copy, signal, scope, observer) };
  } catch (err) {
    if (local && !signal?.aborted) throw new FileError(`cannot write the downloaded copy of backup ${b.name} in ${store.url} to ${dir}: ${local.message}`, TEMP_ROOM_HINT, { cause: local });
    throw err;
  }
}

/**
 * The checks fetchArchive makes, with no copy kept: for an etcd-shield
 * archive, whose checks all happen on the way in. An etcd snapshot is
 * checked from a file (fetchArchive, then verifyArchive).
 */
export async function checkStoredArchive(store: ObjectStore, b: BackupEntry, identities: string[], signal?: AbortSignal): Promise<ArchiveSummary> {
  const verified = await download(store, b, identities, discard(), signal);
  if (!verified) throw new ArchiveError(`backup ${b.name} in ${store.url}: its manifest says ${b.manifest.format}, its archive holds an etcd snapshot`, 'the manifest and archive do not belong together; use another backup');
  return verified;
}

async function download(
  store: ObjectStore,
  b: BackupEntry,
  identities: string[],
  sink: Writable,
  signal?: AbortSignal,
  scope = '',
  observer?: ArchiveObserver,
): Promise<ArchiveSummary | undefined> {
  const m = b.manifest;
  const where = `${b.name} in ${store.url}`;
  if (m.encryption.type === 'age' && identities.length === 0) {
    throw new EncryptionError(`backup ${where} is encrypted with age`, 'give the identity file whose recipient it was encrypted to: --identity FILE');
  }
  const digest = new Digest();
  const verifier = new VerifyingStage(scope, observer);
  try {
    const raw = await store.read(b.archive.key, signal);
    raw.once('error', (e) => digest.destroy(e));
    const plain = await openStored(raw.pipe(digest), { identities, name: `backup ${where}`, form: { compression: m.compression, encrypted: m.encryption.type === 'age' } });
    await pipeline(plain, verifier, sink, { signal });
  } catch (err) {
    if (signal?.aborted) throw stopped(where);
    if (err instanceof NoIdentityMatched) throw await keyOrDamage(store, b, where, err, signal);
    if (err instanceof ShieldError) throw err;
    throw new StoreError(`cannot fetch backup ${where}: ${(err as Error).message}`);
  }
  const altered = unlike(m, digest, where);
  if (altered) throw altered;
  return verifier.summary();
}

const discard = () => new Writable({ write: (_chunk, _enc, done) => done() });

const stopped = (where: string) => new CancelledError(`stopped while fetching backup ${where}; nothing was written to etcd`);

/** Why the stored bytes are not the ones the manifest describes, if they are not. */
function unlike(m: BackupEntry['manifest'], digest: Digest, where: string): ArchiveError | undefined {
  if (digest.bytes !== m.storedBytes) {
    return new ArchiveError(`the archive of backup ${where} is ${digest.bytes} bytes, but its manifest says ${m.storedBytes}: the download ended early or the object was changed`);
  }
  if (digest.sha256() !== m.storedSha256) {
    return new ArchiveError(`the archive of backup ${where} does not match the sha256 in its manifest: it was altered or damaged in the store`);
  }
  return undefined;
}

/**
 * A key that fits no recipient stanza, and a damaged stanza, fail alike.
 * The manifest's sha256 tells them apart: the object is read again to the
 * end (the failed pass stopped at the header), which costs a download on
 * this path only, so that a damaged backup is not blamed on the key, nor
 * a wrong key on the backup.
 */
async function keyOrDamage(store: ObjectStore, b: BackupEntry, where: string, err: NoIdentityMatched, signal?: AbortSignal): Promise<ShieldError> {
  const digest = new Digest();
  try {
    await pipeline(await store.read(b.archive.key, signal), digest, discard(), { signal });
  } catch {
    if (signal?.aborted) return stopped(where);
    return err;
  }
  return unlike(b.manifest, digest, where) ?? new EncryptionError(`none of the given identities can decrypt backup ${where}: ${OTHER_RECIPIENTS} (its stored bytes match its manifest's sha256, so it is intact)`, err.hint);
}
