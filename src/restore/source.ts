import { stat } from 'node:fs/promises';
import type { ArchiveSummary } from '../archive/verify';
import { ArchiveError, FileError } from '../errors';

/** A key to write. Its buffers may be views that a source reuses once the batch's callback has settled. */
export interface Put {
  key: Buffer;
  value: Buffer;
  /** "0" when the key has no lease. */
  lease: string;
}

/**
 * Where restore (and the dry-run plan) take their keys from: an archive
 * file, or a backup merged with a change log. verify() reads and checks
 * everything without writing anything; records() then hands the keys
 * under a scope, each once, in batches of bounded size, waiting for each
 * batch's callback (which must be done with the batch's buffers by then),
 * and throws if the data changed since verify().
 */
export interface RecordSource {
  verify(scope: string, signal?: AbortSignal): Promise<ArchiveSummary>;
  records(scope: string, onBatch: (puts: Put[]) => Promise<void>, signal?: AbortSignal): Promise<void>;
}

/** What tells a changed file apart: a file rewritten in place changes its size or mtime. */
export interface FileStamp {
  path: string;
  size: number;
  mtimeMs: number;
}

export async function stampFile(path: string): Promise<FileStamp> {
  const s = await stat(path).catch((err: NodeJS.ErrnoException) => {
    throw new FileError(`cannot read archive ${path}: ${err.code ?? err.message}`, 'check the path and its permissions');
  });
  return { path, size: s.size, mtimeMs: s.mtimeMs };
}

/** Throws if the file is not as it was when stamped (the second read re-checks the checksum too). */
export async function checkStamp(before: FileStamp): Promise<void> {
  const after = await stampFile(before.path);
  if (after.size !== before.size || after.mtimeMs !== before.mtimeMs) {
    throw new ArchiveError(`the archive ${before.path} changed while it was being restored`, 'restore again from a file nobody writes to');
  }
}
