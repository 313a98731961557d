import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keepAtExit, removeAtExit } from './exit-cleanup';

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
