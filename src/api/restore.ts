import type { ArchiveSummary } from '../archive/verify';
import type { Config } from '../config/config';
import { connect } from '../etcd/connect';
import { restore as runRestore, RestoreSummary } from '../restore/restore';
import type { BatchLimits } from '../restore/limits';
import { withArchiveFile } from './input';
import { ArchiveInput, OperationOptions, phases } from './options';

export interface RestoreRunOptions extends OperationOptions {
  /** Report what would change and change nothing. */
  dryRun?: boolean;
  /** For an etcd snapshot file: the revision to restore (default: its newest). */
  revision?: string;
  /** Transactions in flight, operations and bytes per transaction. */
  limits?: Partial<BatchLimits>;
  /** How messages name a stream input (default "the input stream"). */
  inputName?: string;
  /** age identities (AGE-SECRET-KEY-1...) for an encrypted input. */
  identities?: string[];
}

export type { RestoreSummary };

/**
 * Verifies the whole archive (either format), then writes the keys under
 * config.prefix in batched transactions, with their leases; with
 * config.overwrite, deletes the keys the archive lacks only after every
 * write succeeded. A failure after the first write throws a
 * RestoreInterruptedError that says how far it got.
 */
export async function restore(config: Config, input: ArchiveInput, opts: RestoreRunOptions = {}): Promise<RestoreSummary> {
  return withArchiveFile(input, opts.inputName, opts.signal, (path) => restoreFile(config, path, opts, phases(opts.onProgress)), opts.identities);
}

/** Restores a plain archive file that is already in place (given, spooled or fetched). */
export async function restoreFile(
  config: Config,
  path: string,
  opts: Omit<RestoreRunOptions, 'inputName' | 'identities' | 'onProgress'>,
  report: ReturnType<typeof phases>,
  /** The file's verifyArchive result with config.prefix as scope, when it was checked on its way in. */
  verified?: ArchiveSummary,
): Promise<RestoreSummary> {
  const conn = connect(config, config.endpoints, { warn: opts.onWarning });
  try {
    return await runRestore(conn, path, {
      prefix: config.prefix,
      overwrite: config.overwrite,
      dryRun: opts.dryRun,
      revision: opts.revision,
      verified,
      limits: opts.limits,
      signal: opts.signal,
      onPhase: report.phase,
      onProgress: report.progress,
    });
  } finally {
    conn.close();
  }
}
