import type { Writable } from 'node:stream';
import { backup as runBackup } from '../backup/backup';
import type { BackupFormat, BackupSummary } from '../backup/types';
import type { Config } from '../config/config';
import { CancelledError, ConfigError } from '../errors';
import { connect } from '../etcd/connect';
import { Sink } from '../io/sink';
import { ArchiveOutput, isFile, OperationOptions, phases } from './options';

export interface BackupRunOptions extends OperationOptions {
  /** etcd-shield (checksummed, with leases; the default) or legacy (the original Go plugin's). */
  format?: BackupFormat;
  /** Byte budget per read request (tuning only). */
  pageBytes?: number;
  /** How messages name a stream output (default "the output stream"). */
  outputName?: string;
}

export type { BackupSummary };

/**
 * Writes a consistent archive of the keys under config.prefix, every page
 * read at one revision. A file output appears only once complete; a stream
 * output that fails part-way holds an archive without a trailer, which
 * restore and verify refuse.
 */
export async function backup(config: Config, output: ArchiveOutput, opts: BackupRunOptions = {}): Promise<BackupSummary> {
  if (config.mode === 'snapshot') {
    throw new ConfigError('this configuration is in snapshot mode, which backup() does not take', 'call snapshotBackup(), or set mode to logical');
  }
  const sink = isFile(output) ? Sink.file(output.file) : new Sink(output as Writable, opts.outputName ?? 'the output stream');
  const format = opts.format ?? 'etcd-shield';
  const conn = connect(config, config.endpoints, { warn: opts.onWarning });
  const report = phases(opts.onProgress);
  report.phase('backup');
  try {
    const summary = await runBackup(conn, sink, {
      prefix: config.prefix,
      format,
      pageBytes: opts.pageBytes,
      signal: opts.signal,
      onProgress: report.progress,
    });
    await sink.end();
    if (summary.keys === 0) {
      opts.onWarning?.(emptyBackupWarning(config.prefix, summary.revision, format === 'legacy' ? 'the legacy format cannot record an empty backup, so the output is empty' : undefined));
    }
    return summary;
  } catch (err) {
    await sink.abandon().catch(() => undefined);
    if (opts.signal?.aborted || err instanceof CancelledError) {
      throw new CancelledError('backup stopped by a signal; the archive is incomplete (no trailer) and restore will refuse it', undefined, { cause: err });
    }
    throw err;
  } finally {
    conn.close();
  }
}

/**
 * A backup with no keys is valid, but at 3 a.m. it is usually a mistyped
 * prefix that would go on making empty backups unnoticed.
 */
export function emptyBackupWarning(prefix: string, revision: string, more?: string): string {
  const what = prefix === '' ? `etcd held no keys at revision ${revision}` : `no keys under the prefix ${JSON.stringify(prefix)} at revision ${revision}`;
  const check = prefix === '' ? '' : `; check the prefix (etcdctl get ${JSON.stringify(prefix)} --prefix --keys-only --limit 5 lists what is there)`;
  return `${what}: the backup is empty${more ? ` (${more})` : ''}${check}`;
}
