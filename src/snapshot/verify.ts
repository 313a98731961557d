import { ArchiveError } from '../errors';
import { BoltFile, FILE_CHUNK_BYTES, TRAILER_BYTES } from './file';
import { type FileHash, hashFileInWorker } from './file-hash';
import { firstPassDuringWalk, type SnapshotMemo } from './scan';
import { checkStructure } from './structure';

export interface SnapshotCheck {
  /** Whether etcd's sha256 trailer was there; when it was, it matched (or this threw). */
  trailer: boolean;
  /** Which meta page was read, and why the other was not, if it was unusable. */
  meta: number;
  otherMetaProblem?: string;
  pages: number;
  buckets: number;
}

/**
 * Checks a snapshot file without reading its contents as keys: the meta
 * pages and every bucket's tree, then runs `alongside` (reading the keys)
 * while the sha256 trailer, when present, is checked on another thread.
 * A trailer that does not match is the error reported, whatever else
 * failed: it says the file changed after etcd wrote it. With `firstPass`,
 * the walk of the tree also does the first pass of a scan at that revision
 * into memo, for alongside's scan (and later ones) to skip.
 */
export async function checkSnapshotFile<T>(
  path: string,
  signal: AbortSignal | undefined,
  alongside: () => Promise<T>,
  firstPass?: { revision: string | undefined; memo: SnapshotMemo },
): Promise<{ check: SnapshotCheck; result: T }> {
  const file = await BoltFile.open(path);
  let hash: FileHash | undefined;
  try {
    hash = file.hasTrailer ? hashFileInWorker(file.fd, file.dataSize, FILE_CHUNK_BYTES, path, signal) : undefined;
    let outcome: { check: SnapshotCheck; result: T };
    try {
      const watch = firstPass && (await firstPassDuringWalk(file, firstPass.revision, firstPass.memo));
      const { pages, buckets } = await checkStructure(file, signal, watch);
      watch?.done();
      const check = { trailer: file.hasTrailer, meta: file.meta.index, otherMetaProblem: file.otherMetaProblem, pages, buckets };
      outcome = { check, result: await alongside() };
    } catch (err) {
      if (hash) checkTrailer(file, await hash.digest.catch(() => undefined));
      throw err;
    }
    if (hash) checkTrailer(file, await hash.digest);
    return outcome;
  } finally {
    await hash?.settle();
    await file.close();
  }
}

function checkTrailer(file: BoltFile, digest: Buffer | undefined): void {
  if (!digest) return;
  if (!digest.equals(file.read(file.dataSize, TRAILER_BYTES))) {
    throw new ArchiveError(
      `the sha256 trailer of ${file.path} does not match its contents: the file was changed or damaged after etcd wrote it`,
      'use an intact snapshot; nothing was written to etcd',
    );
  }
}
