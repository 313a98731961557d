import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Removed on normal return, on error, and on process exit (e.g. a second Ctrl-C).
const live = new Set<string>();
process.on('exit', () => {
  for (const dir of live) rmSync(dir, { recursive: true, force: true });
});

/** Runs fn with a private (0700) temporary directory that is always removed. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(process.env.TMPDIR || tmpdir(), 'etcd-shield-'));
  live.add(dir);
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    live.delete(dir);
  }
}
