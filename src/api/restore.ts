import type { ArchiveSummary } from '../archive/verify';
import type { Config } from '../config/config';
import { connect } from '../etcd/connect';
import { ArchiveFileSource } from '../restore/archive-source';
import { restore as runRestore, RestoreSummary } from '../restore/restore';
import type { BatchLimits } from '../restore/limits';
import type { RecordSource } from '../restore/source';
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

type SourceRunOptions = Omit<RestoreRunOptions, 'inputName' | 'identities' | 'onProgress'>;

/**
 * Restores a plain archive file that is already in place (given, spooled or
 * fetched); `verified` is its verifyArchive result with config.prefix as
 * scope, when it was checked on its way in (a download).
 */
export async function restoreFile(config: Config, path: string, opts: SourceRunOptions, report: ReturnType<typeof phases>, verified?: ArchiveSummary): Promise<RestoreSummary> {
  return restoreSource(config, new ArchiveFileSource(path, opts.revision, verified && { scope: config.prefix, summary: verified }), opts, report);
}

/** Restores the keys of any record source (an archive file, a backup plus a change log). */
export async function restoreSource(config: Config, source: RecordSource, opts: Omit<SourceRunOptions, 'revision'>, report: ReturnType<typeof phases>): Promise<RestoreSummary> {
  const conn = connect(config, config.endpoints, { warn: opts.onWarning });
  try {
    return await runRestore(conn, source, {
      prefix: config.prefix,
      overwrite: config.overwrite,
      dryRun: opts.dryRun,
      limits: opts.limits,
      signal: opts.signal,
      onPhase: report.phase,
      onProgress: report.progress,
    });
  } finally {
    conn.close();
  }
}
