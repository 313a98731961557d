import { encodeManifest, type Manifest, MANIFEST_VERSION } from '../catalogue/manifest';
import { manifestKey } from '../catalogue/naming';
import { CancelledError, ShieldError, StoreError } from '../errors';
import type { Digest } from '../pipeline/digest';
import type { Compression, StoredForm } from '../pipeline/types';
import { TOOL_NAME, TOOL_VERSION } from '../version';
import type { ObjectStore } from '../store/types';
import type { OperationOptions } from './options';
import type { StoreOptions } from './store-ref';

export interface StoreBackupOptions extends OperationOptions, StoreOptions {
  /** Default zstd. */
  compression?: Compression;
  /** age X25519 recipients (age1...); with any, the stored archive is encrypted to all of them. */
  recipients?: string[];
  /** Byte budget per read request (tuning only). */
  pageBytes?: number;
  /** In snapshot mode: the client URL of the member to take the snapshot from. */
  member?: string;
}

export interface StoredBackup {
  /** The backup's name in the store (e.g. 2026-12-02T03-00-00Z-r123456-9f3a). */
  name: string;
  store: string;
  manifest: Manifest;
  /** For an etcd snapshot: the member it was taken from. */
  member?: { endpoint: string; memberId: string; leader: boolean };
}

/** How the options say to store the backup, and to whom it is encrypted. */
export function storedForm(opts: StoreBackupOptions): { form: StoredForm; recipients: string[] } {
  const recipients = opts.recipients ?? [];
  return { form: { compression: opts.compression ?? 'zstd', encrypted: recipients.length > 0 }, recipients };
}

/** What a backup's run knows of it; the rest of its manifest comes from how it was stored. */
export type BackupFacts = Pick<Manifest, 'name' | 'archive' | 'takenAt' | 'clusterId' | 'revision' | 'prefix' | 'keys' | 'leases' | 'format' | 'archiveBytes'>;

export function manifestOf(facts: BackupFacts, form: StoredForm, recipients: string[], stored: Digest): Manifest {
  const { archiveBytes, ...about } = facts;
  // Sizes and checksums after what the archive holds and how it is stored, as docs/store-layout.md lists them.
  return {
    kind: 'etcd-shield-backup',
    version: MANIFEST_VERSION,
    ...about,
    compression: form.compression,
    encryption: { type: form.encrypted ? 'age' : 'none', recipients },
    archiveBytes,
    storedBytes: stored.bytes,
    storedSha256: stored.sha256(),
    tool: `${TOOL_NAME} ${TOOL_VERSION}`,
  };
}

/** The manifest makes the backup; if it cannot be written, the archive goes too, so nothing half-made stays. */
export async function commitManifest(store: ObjectStore, m: Manifest, signal: AbortSignal): Promise<void> {
  try {
    if (signal.aborted) throw new CancelledError(`backup stopped by a signal before its manifest was written; nothing was stored as a backup in ${store.url}`);
    await store.putBytes(manifestKey(m.name), encodeManifest(m), signal);
  } catch (err) {
    await store.remove(m.archive).catch(() => undefined);
    if (err instanceof ShieldError) throw err;
    throw new StoreError(`cannot write the manifest of ${m.name} to ${store.url}: ${(err as Error).message}`);
  }
}

/**
 * The error a failed run into a store reports: the store's own failure
 * first; a stop by the caller's signal as a CancelledError saying nothing
 * was stored (and what the store could not undo); else the run's error.
 */
export function storeRunError(store: ObjectStore, err: unknown, stored: unknown, signal: AbortSignal | undefined): unknown {
  if (stored instanceof ShieldError && !(stored instanceof CancelledError)) return stored;
  if (signal?.aborted) {
    // What the store could not undo (an upload it could not abort) is the operator's to clear.
    const left = stored instanceof CancelledError && stored.leftovers.length ? `, but ${stored.leftovers.join('; ')}` : '';
    return new CancelledError(`backup stopped by a signal; nothing was stored as a backup in ${store.url}${left}`, undefined, { cause: err });
  }
  return err;
}
