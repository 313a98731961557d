import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { type Duplex, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { verifyArchive } from '../archive/verify';
import { archiveKey, backupName } from '../catalogue/naming';
import type { Config } from '../config/config';
import { ArchiveError, FileError } from '../errors';
import { TEMP_ROOM_HINT, withTempDir } from '../io/tempdir';
import { Digest } from '../pipeline/digest';
import { encodeStages, storedExtension } from '../pipeline/stages';
import type { ObjectStore } from '../store/types';
import { phases } from './options';
import { snapshotBackup } from './snapshot-backup';
import { type StoreRef, withStore } from './store-ref';
import { commitManifest, manifestOf, type StoreBackupOptions, type StoredBackup, storedForm, storeRunError } from './stored-backup';

/**
 * Stores etcd's own snapshot as a backup: streamed from one member into a
 * private file (etcd 3.4 tells the revision only inside the database, and
 * the name needs it), checked whole there as restore would check it (which
 * also counts its keys and leases for the manifest), then compressed,
 * encrypted and uploaded like an archive, and committed by its manifest.
 * It needs free space for one snapshot in the temporary directory.
 */
export async function snapshotToStore(config: Config, to: StoreRef, opts: StoreBackupOptions = {}): Promise<StoredBackup> {
  const { form, recipients } = storedForm(opts);
  const report = phases(opts.onProgress);
  return withStore(to, opts, (store) =>
    withTempDir(async (dir) => {
      const file = join(dir, 'snapshot.db');
      let takenAt = new Date();
      let taken;
      let summary;
      try {
        // A missing bucket or a wrong key shows now, not after the whole snapshot was streamed.
        await store.prepare(opts.signal);
        takenAt = new Date();
        taken = await snapshotBackup(config, { file }, { member: opts.member, signal: opts.signal, onWarning: opts.onWarning, onProgress: opts.onProgress });
        report.phase('checking the snapshot');
        summary = await verifyArchive(file, '', opts.signal);
        if (!summary.snapshot) throw new ArchiveError(`member ${taken.member} sent a snapshot that is not an etcd database (read as ${summary.format}); nothing was stored`);
      } catch (err) {
        if (err instanceof FileError) {
          throw new FileError(`${err.message} (the snapshot's temporary copy, on its way to ${store.url})`, TEMP_ROOM_HINT, { cause: err });
        }
        throw storeRunError(store, err, undefined, opts.signal);
      }
      const revision = summary.snapshot.revision;
      const name = backupName(takenAt, revision);
      const key = archiveKey(name, storedExtension(form), 'etcd-snapshot');
      report.phase('upload');
      const digest = await upload(store, key, file, encodeStages(form, recipients), opts.signal, (done) => report.progress(done, taken.bytes));
      if (summary.records === 0) opts.onWarning?.(`the snapshot holds no keys at revision ${revision}: the cluster is empty`);
      const facts = { name, archive: key, takenAt: takenAt.toISOString(), clusterId: taken.clusterId, revision, prefix: '', keys: summary.records, leases: summary.leases.length, format: 'etcd-snapshot', archiveBytes: taken.bytes } as const;
      const manifest = manifestOf(facts, form, recipients, digest);
      await commitManifest(store, manifest, opts.signal ?? new AbortController().signal);
      return { name, store: store.url, manifest, member: { endpoint: taken.member, memberId: taken.memberId, leader: taken.leader } };
    }),
  );
}

/** Streams the file through the stages into the object `key`; a failure on either side stops both, and nothing is left under key. */
async function upload(store: ObjectStore, key: string, file: string, stages: Duplex[], signal: AbortSignal | undefined, progress: (done: number) => void): Promise<Digest> {
  const stop = new AbortController();
  const both = signal ? AbortSignal.any([signal, stop.signal]) : stop.signal;
  const digest = new Digest();
  let read = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      progress((read += chunk.length));
      done(null, chunk);
    },
  });
  const stored = store.put(key, digest, both);
  const moved = pipeline([createReadStream(file), counter, ...stages, digest], { signal: both }).catch((err: unknown) => {
    stop.abort();
    throw err;
  });
  const [m, s] = await Promise.allSettled([moved, stored]);
  if (s.status === 'rejected' || m.status === 'rejected') {
    throw storeRunError(store, m.status === 'rejected' ? m.reason : s.status === 'rejected' ? s.reason : undefined, s.status === 'rejected' ? s.reason : undefined, signal);
  }
  return digest;
}
