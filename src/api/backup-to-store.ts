import { pipeline, type Readable, type Writable } from 'node:stream';
import { backup as runBackup } from '../backup/backup';
import type { BackupStart } from '../backup/types';
import { archiveKey, backupName } from '../catalogue/naming';
import type { Config } from '../config/config';
import { connect } from '../etcd/connect';
import { abortable } from '../util/abortable';
import { Sink } from '../io/sink';
import { Digest } from '../pipeline/digest';
import { encodeStages, storedExtension } from '../pipeline/stages';
import { emptyBackupWarning } from './backup';
import { phases } from './options';
import { snapshotToStore } from './snapshot-to-store';
import { type StoreRef, withStore } from './store-ref';
import { commitManifest, manifestOf, type StoreBackupOptions, type StoredBackup, storedForm, storeRunError } from './stored-backup';

export type { StoreBackupOptions, StoredBackup };

/**
 * Streams a consistent backup into a store: archive, then compression,
 * then encryption, then the upload, all with backpressure, so memory stays
 * bounded. The manifest is written last: a run that fails or is stopped
 * leaves at most an archive without one (an incomplete backup that list
 * and restore ignore), and an S3 multipart upload is aborted.
 */
export async function backupToStore(config: Config, to: StoreRef, opts: StoreBackupOptions = {}): Promise<StoredBackup> {
  if (config.mode === 'snapshot') return snapshotToStore(config, to, opts);
  const { form, recipients } = storedForm(opts);
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
      throw storeRunError(store, err, await upload?.then(() => undefined, (e: unknown) => e), opts.signal);
    } finally {
      conn.close();
    }
    if (failure) throw failure;
    if (summary.keys === 0) opts.onWarning?.(emptyBackupWarning(config.prefix, summary.revision));
    const s = started as BackupStart;
    const facts = { name, archive: key, takenAt: s.takenAt.toISOString(), clusterId: s.clusterId, revision: summary.revision, prefix: config.prefix, keys: summary.keys, leases: summary.leases, format: 'etcd-shield', archiveBytes: summary.bytes } as const;
    const manifest = manifestOf(facts, form, recipients, digest);
    await commitManifest(store, manifest, signal);
    return { name, store: store.url, manifest };
  });
}
