import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * mkdir -p, one level at a time. Node's `mkdir(path, { recursive: true })`
 * retries for ever where creating a child fails with ENOENT under a parent
 * that exists (procfs, sysfs: `--to /proc/x` spun at 80% CPU and never
 * returned). Here each level is tried at most twice, so every path ends in
 * an answer. A directory made meanwhile by someone else (two backups into
 * one new store) counts as made.
 */
export async function makeDirectory(path: string): Promise<void> {
  try {
    await mkdir(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return isDirectory(path, err);
    const parent = dirname(path);
    if (code !== 'ENOENT' || parent === path) throw err;
    await makeDirectory(parent);
    try {
      await mkdir(path);
    } catch (again) {
      if ((again as NodeJS.ErrnoException).code !== 'EEXIST') throw again;
      return isDirectory(path, again);
    }
  }
}

async function isDirectory(path: string, err: unknown): Promise<void> {
  if ((await stat(path)).isDirectory()) return;
  throw Object.assign(new Error(`${path} exists and is not a directory`), { code: 'ENOTDIR', cause: err });
}
