import { pipeline, type Readable, type Writable } from 'node:stream';
import { backup as runBackup } from '../backup/backup';
import type { BackupStart } from '../backup/types';
import { encodeManifest, type Manifest, MANIFEST_VERSION } from '../catalogue/manifest';
import { archiveKey, backupName, manifestKey } from '../catalogue/naming';
import type { Config } from '../config/config';
import { CancelledError, ConfigError, ShieldError, StoreError } from '../errors';
import { connect } from '../etcd/connect';
import { abortable } from '../util/abortable';
import { Sink } from '../io/sink';
import { Digest } from '../pipeline/digest';
import { encodeStages, storedExtension } from '../pipeline/stages';
import type { Compression } from '../pipeline/types';
import type { ObjectStore } from '../store/types';
import { TOOL_NAME, TOOL_VERSION } from '../version';
import type { OperationOptions } from './options';
import { emptyBackupWarning } from './backup';
import { phases } from './options';
import { type StoreOptions, type StoreRef, withStore } from './store-ref';

export interface StoreBackupOptions extends OperationOptions, StoreOptions {
  /** Default zstd. */
  compression?: Compression;
  /** age X25519 recipients (age1...); with any, the stored archive is encrypted to all of them. */
  recipients?: string[];
  /** Byte budget per read request (tuning only). */
  pageBytes?: number;
}

export interface StoredBackup {
  /** The backup's name in the store (e.g. 2026-12-02T03-00-00Z-r123456-9f3a). */
  name: string;
  store: string;
  manifest: Manifest;
}

/**
 * Streams a consistent backup into a store: archive, then compression,
 * then encryption, then the upload, all with backpressure, so memory stays
 * bounded. The manifest is written last: a run that fails or is stopped
 * leaves at most an archive without one (an incomplete backup that list
 * and restore ignore), and an S3 multipart upload is aborted.
 */
export async function backupToStore(config: Config, to: StoreRef, opts: StoreBackupOptions = {}): Promise<StoredBackup> {
  if (config.mode === 'snapshot') {
    throw new ConfigError('a store holds etcd-shield archives only, and this configuration is in snapshot mode', 'write the snapshot to --out FILE or standard output, or set mode to logical');
  }
  const form = { compression: opts.compression ?? 'zstd', encrypted: (opts.recipients?.length ?? 0) > 0 } as const;
  const recipients = opts.recipients ?? [];
  return withStore(to, opts, async (store) => {
    const stop = new AbortController();
    const signal = opts.signal ? AbortSignal.any([opts.signal, stop.signal]) : stop.signal;
    const stages = encodeStages(form, recipients);
    const digest = new Digest();
    const chain = [...stages, digest];
    const head = chain[0];
    let failure: Error | undefined;
    if (chain.length > 1) {
      pipeline(chain as unknown as [Writable, Readable], (err) => {
        if (err) failure ??= err;
      });
    }

    let started: BackupStart | undefined;
    let upload: Promise<{ bytes: number }> | undefined;
    let name = '';
    let key = '';
    const onStart = (s: BackupStart) => {
      started = s;
      name = backupName(s.takenAt, s.revision);
      key = archiveKey(name, storedExtension(form));
      upload = store.put(key, digest, signal);
      // A store that fails stops the backup; its own error is the one reported.
      upload.catch(() => stop.abort());
    };

    const conn = connect(config, config.endpoints, { warn: opts.onWarning });
    const report = phases(opts.onProgress);
    // zstd and gzip take in each buffer before they call back; a PassThrough would hand on the very buffer.
    const sink = new Sink(head, `the upload to ${store.url}`, undefined, form.compression !== 'none');
    let summary;
    try {
      report.phase('backup');
      const reading = runBackup(conn, sink, { prefix: config.prefix, format: 'etcd-shield', pageBytes: opts.pageBytes, signal, onStart, onProgress: report.progress });
      // A stop must not wait for a hung etcd call (closing the connection below ends it).
      summary = await abortable(reading, opts.signal, 'the backup');
      await sink.end();
      report.phase('upload');
      await upload;
    } catch (err) {
      head.destroy(err as Error);
      const stored = await upload?.then(() => undefined, (e: unknown) => e);
      if (stored instanceof ShieldError && !(stored instanceof CancelledError)) throw stored;
      if (opts.signal?.aborted) {
        // What the store could not undo (an upload it could not abort) is the operator's to clear.
        const left = stored instanceof CancelledError && stored.leftovers.length ? `, but ${stored.leftovers.join('; ')}` : '';
        throw new CancelledError(`backup stopped by a signal; nothing was stored as a backup in ${store.url}${left}`, undefined, { cause: err });
      }
      throw err;
    } finally {
      conn.close();
    }
    if (failure) throw failure;
    if (summary.keys === 0) opts.onWarning?.(emptyBackupWarning(config.prefix, summary.revision));
    const s = started as BackupStart;
    const manifest: Manifest = {
      kind: 'etcd-shield-backup',
      version: MANIFEST_VERSION,
      name,
      archive: key,
      takenAt: s.takenAt.toISOString(),
      clusterId: s.clusterId,
      revision: summary.revision,
      prefix: config.prefix,
      keys: summary.keys,
      leases: summary.leases,
      format: 'etcd-shield',
      compression: form.compression,
      encryption: { type: form.encrypted ? 'age' : 'none', recipients },
      archiveBytes: summary.bytes,
      storedBytes: digest.bytes,
      storedSha256: digest.sha256(),
      tool: `${TOOL_NAME} ${TOOL_VERSION}`,
    };
    await commitManifest(store, manifest, signal);
    return { name, store: store.url, manifest };
  });
}

/** The manifest makes the backup; if it cannot be written, the archive goes too, so nothing half-made stays. */
async function commitManifest(store: ObjectStore, m: Manifest, signal: AbortSignal): Promise<void> {
  try {
    if (signal.aborted) throw new CancelledError(`backup stopped by a signal before its manifest was written; nothing was stored as a backup in ${store.url}`);
    await store.putBytes(manifestKey(m.name), encodeManifest(m), signal);
  } catch (err) {
    await store.remove(m.archive).catch(() => undefined);
    if (err instanceof ShieldError) throw err;
    throw new StoreError(`cannot write the manifest of ${m.name} to ${store.url}: ${(err as Error).message}`);
  }
}
