import { createHash } from 'node:crypto';
import { ArchiveError, CancelledError } from '../errors';
import { BoltFile, TRAILER_BYTES } from './file';
import { checkStructure } from './structure';

const HASH_CHUNK = 1024 * 1024;

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
 * Checks a snapshot file without reading its contents as keys: the sha256
 * trailer when present, then the meta pages and every bucket's tree.
 */
export async function checkSnapshotFile(path: string, signal?: AbortSignal): Promise<SnapshotCheck> {
  const file = await BoltFile.open(path);
  try {
    if (file.hasTrailer) {
      const hash = createHash('sha256');
      await file.forEachChunk(HASH_CHUNK, (chunk) => hash.update(chunk), signal);
      if (signal?.aborted) throw new CancelledError('stopped by a signal while checking the snapshot');
      const stated = file.read(file.dataSize, TRAILER_BYTES);
      if (!hash.digest().equals(stated)) {
        throw new ArchiveError(
          `the sha256 trailer of ${path} does not match its contents: the file was changed or damaged after etcd wrote it`,
          'use an intact snapshot; nothing was written to etcd',
        );
      }
    }
    const { pages, buckets } = await checkStructure(file, signal);
    return { trailer: file.hasTrailer, meta: file.meta.index, otherMetaProblem: file.otherMetaProblem, pages, buckets };
  } finally {
    await file.close();
  }
}
