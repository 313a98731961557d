import { lstatSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keepAtExit, removeAtExit } from './exit-cleanup';
import { processAlive } from './process-alive';

/** What to do when a temporary copy (a spooled stream, a download, a snapshot on its way to a store) does not fit. */
export const TEMP_ROOM_HINT = 'free space in the temporary directory, or set TMPDIR to a directory with room for the whole archive or snapshot';

const PREFIX = 'etcd-shield-';
const RUN_DIR = /^etcd-shield-(\d+)-[^/]+$/;
let swept = false;

/** Runs fn with a private (0700) temporary directory that is always removed. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  if (!swept) {
    swept = true;
    sweepDeadRuns(tmpdir());
  }
  const dir = mkdtempSync(join(tmpdir(), `${PREFIX}${process.pid}-`));
  removeAtExit(dir);
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    keepAtExit(dir);
  }
}

/**
 * Removes the temporary directories of runs killed outright (SIGKILL, the
 * OOM killer), which could not remove their own: a snapshot or download
 * copy each, as large as the database. Only ours (same user), and only when
 * the process named in it is gone.
 */
export function sweepDeadRuns(root: string): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return removed; // the run's own mkdtemp reports a missing or unreadable TMPDIR
  }
  for (const name of names) {
    const pid = RUN_DIR.exec(name)?.[1];
    if (pid === undefined || Number(pid) === process.pid || processAlive(Number(pid))) continue;
    const dir = join(root, name);
    try {
      // lstat: a symbolic link of that name is not a directory of ours.
      const st = lstatSync(dir);
      if (!st.isDirectory() || st.uid !== process.getuid?.()) continue;
      rmSync(dir, { recursive: true, force: true });
      removed.push(dir);
    } catch {
      // gone already, or not ours to remove
    }
  }
  return removed;
}
