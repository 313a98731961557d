import { type BackupEntry, readCatalogue } from '../catalogue/catalogue';
import { selectBackup, type Selector } from '../catalogue/select';
import type { Config } from '../config/config';
import { withTempDir } from '../io/tempdir';
import type { RestoreSummary } from '../restore/restore';
import { fetchArchive } from './fetch-archive';
import { phases } from './options';
import { restoreFile, type RestoreRunOptions } from './restore';
import { type StoreOptions, type StoreRef, withStore } from './store-ref';

export interface StoreRestoreOptions extends Omit<RestoreRunOptions, 'inputName'>, StoreOptions, Selector {
  /** age identities (AGE-SECRET-KEY-1...) for encrypted backups. */
  identities?: string[];
}

export interface StoreRestoreSummary extends RestoreSummary {
  backup: BackupEntry;
  store: string;
}

/**
 * Restores the newest complete backup of a store (or the one the selector
 * picks): downloads and checks it against its manifest, verifies the whole
 * archive on the way in, and only then writes to etcd, as every restore does.
 */
export async function restoreFromStore(config: Config, from: StoreRef, opts: StoreRestoreOptions = {}): Promise<StoreRestoreSummary> {
  return withStore(from, opts, async (store) => {
    const report = phases(opts.onProgress);
    report.phase('catalogue');
    const backup = selectBackup(await readCatalogue(store, opts.signal), opts, store.url);
    return withTempDir(async (dir) => {
      report.phase('download');
      const { path, verified } = await fetchArchive(store, backup, opts.identities ?? [], dir, opts.signal, config.prefix);
      return { ...(await restoreFile(config, path, opts, report, verified)), backup, store: store.url };
    });
  });
}
