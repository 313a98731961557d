import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keepAtExit, removeAtExit } from './exit-cleanup';

/** What to do when a temporary copy (a spooled stream, a download, a snapshot on its way to a store) does not fit. */
export const TEMP_ROOM_HINT = 'free space in the temporary directory, or set TMPDIR to a directory with room for the whole archive or snapshot';

/** Runs fn with a private (0700) temporary directory that is always removed. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'etcd-shield-'));
  removeAtExit(dir);
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    keepAtExit(dir);
  }
}
