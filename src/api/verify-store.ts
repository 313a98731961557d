import { verifyArchive } from '../archive/verify';
import { type BackupEntry, type Catalogue, readCatalogue } from '../catalogue/catalogue';
import type { Manifest } from '../catalogue/manifest';
import { selectBackup, type Selector } from '../catalogue/select';
import { ArchiveError, asShieldError, CancelledError, EncryptionError, FileError, type ShieldError } from '../errors';
import { withTempDir } from '../io/tempdir';
import type { ObjectStore } from '../store/types';
import { checkStoredArchive, fetchArchive } from './fetch-archive';
import type { OperationOptions } from './options';
import { type StoreOptions, type StoreRef, withStore } from './store-ref';
import { summarize, type VerifySummary } from './verify';

export interface StoreVerifyOptions extends Pick<OperationOptions, 'signal' | 'onProgress'>, StoreOptions, Selector {
  /** Every complete backup, oldest first (else the newest, or the selected one). */
  all?: boolean;
  identities?: string[];
}

export interface BackupCheck {
  backup: BackupEntry;
  ok: boolean;
  /** It could not be decrypted with the identities given, so it was not checked (not known to be damaged). */
  undecrypted: boolean;
  /** What the archive holds, when it could be read to the end. */
  archive?: VerifySummary;
  error?: ShieldError;
}

export interface StoreVerifyReport {
  store: string;
  checks: BackupCheck[];
  /** Manifests that could not be read; they count as failures. */
  problems: Catalogue['problems'];
  ok: boolean;
}

/**
 * Downloads, decrypts, decompresses and checks each chosen backup end to
 * end, one at a time, and checks that the archive says what its manifest
 * says. A damaged backup is reported and the others are still checked.
 */
export async function verifyStore(from: StoreRef, opts: StoreVerifyOptions = {}): Promise<StoreVerifyReport> {
  return withStore(from, opts, async (store) => {
    const cat = await readCatalogue(store, opts.signal);
    const chosen = opts.all ? cat.backups : [selectBackup(cat, opts, store.url)];
    const checks: BackupCheck[] = [];
    for (const [i, backup] of chosen.entries()) {
      opts.onProgress?.({ phase: 'verify', done: i, total: chosen.length });
      try {
        const archive = await checkOne(store, backup, opts.identities ?? [], opts.signal);
        agrees(backup.manifest, archive);
        checks.push({ backup, ok: true, undecrypted: false, archive });
      } catch (err) {
        // A stop, or a local copy that does not fit, ends the run: it says nothing about this backup or the next.
        if (err instanceof CancelledError || err instanceof FileError || opts.signal?.aborted) throw err;
        const error = asShieldError(err);
        checks.push({ backup, ok: false, undecrypted: error instanceof EncryptionError, error });
      }
    }
    opts.onProgress?.({ phase: 'verify', done: chosen.length, total: chosen.length });
    const problems = opts.all ? cat.problems : [];
    return { store: store.url, checks, problems, ok: checks.every((c) => c.ok) && problems.length === 0 };
  });
}

/** An etcd-shield archive is checked as it streams past; only a snapshot needs a local copy. */
async function checkOne(store: ObjectStore, backup: BackupEntry, identities: string[], signal?: AbortSignal): Promise<VerifySummary> {
  if (backup.manifest.format === 'etcd-shield') return summarize(await checkStoredArchive(store, backup, identities, signal));
  return withTempDir(async (dir) => {
    const { path, verified } = await fetchArchive(store, backup, identities, dir, signal);
    return summarize(verified ?? (await verifyArchive(path, '', signal)));
  });
}

/** The archive is intact; it must also be the one the manifest describes. */
function agrees(m: Manifest, a: VerifySummary): void {
  const pairs: [string, unknown, unknown][] = [
    ['revision', m.revision, a.revision],
    ['keys', m.keys, a.keys],
    ['leases', m.leases, a.leases],
    ['archive bytes', m.archiveBytes, a.bytes],
    // A snapshot records no prefix: it always holds the whole keyspace.
    ['prefix', m.prefix, a.prefix ?? ''],
    ['format', m.format, a.format],
  ];
  for (const [what, said, found] of pairs) {
    if (said !== found) throw new ArchiveError(`backup ${m.name}: its manifest says ${what} ${String(said)}, its archive holds ${String(found)}`, 'the manifest and archive do not belong together; use another backup');
  }
}
