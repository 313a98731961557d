import { close as closeCb, closeSync, fdatasync as fdatasyncCb, fsync as fsyncCb, lstatSync, openSync, readdirSync, unlinkSync } from 'node:fs';
import { open as opendir, rename } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { FileError } from '../errors';
import { keepAtExit, removeAtExit } from './exit-cleanup';
import { processAlive } from './process-alive';

const close = promisify(closeCb);
const fdatasync = promisify(fdatasyncCb);
const fsync = promisify(fsyncCb);

/** `.NAME.PID.part`, hidden beside NAME. */
export function partName(name: string, pid: number): string {
  return `.${name}.${pid}.part`;
}

const PART = /^\.(.+)\.(\d+)\.part$/s;

/** The NAME a part file was for, or undefined when `file` is not a part file's name. */
export function partTarget(file: string): string | undefined {
  return PART.exec(file)?.[1];
}

/**
 * Removes the part files that runs killed outright left for this target
 * (an `--out` file written again and again by cron), when their process
 * is gone from this host and they are this user's.
 */
function removeDeadParts(target: string): void {
  const dir = dirname(target);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return; // opening the part file reports it
  }
  for (const name of names) {
    const m = PART.exec(name);
    if (!m || m[1] !== basename(target) || Number(m[2]) === process.pid || processAlive(Number(m[2]))) continue;
    try {
      const st = lstatSync(join(dir, name));
      if (st.isFile() && st.uid === process.getuid?.()) unlinkSync(join(dir, name));
    } catch {
      // gone already, or not ours to remove
    }
  }
}

/** Written data is pushed to disk every this many bytes, so the final fsync has little left to do. */
const SYNC_EVERY = 32 * 1024 * 1024;

/**
 * An archive file written beside its final name and renamed over it only
 * once complete and on disk, as `etcdctl snapshot save` does: a backup that
 * fails or is stopped leaves the previous archive untouched, and one that
 * succeeds survives a crash right after.
 */
export class PartFile {
  private unsynced = 0;
  private syncing: Promise<void> | undefined;

  private constructor(
    readonly fd: number,
    private readonly part: string,
    private readonly target: string,
  ) {}

  static open(target: string): PartFile {
    removeDeadParts(target);
    const part = join(dirname(target), partName(basename(target), process.pid));
    let fd: number;
    try {
      fd = openSync(part, 'wx', 0o600);
    } catch (err) {
      throw new FileError(`cannot write ${target}: ${(err as Error).message}`, 'check that its directory exists and that you may write there');
    }
    removeAtExit(part);
    return new PartFile(fd, part, target);
  }

  /** Counts bytes handed to the stream; starts a background fdatasync now and then. */
  wrote(bytes: number): void {
    this.unsynced += bytes;
    if (this.unsynced < SYNC_EVERY || this.syncing) return;
    this.unsynced = 0;
    this.syncing = fdatasync(this.fd)
      .catch(() => undefined) // the final fsync reports any failure
      .finally(() => (this.syncing = undefined));
  }

  /** After the last write has gone out: fsync, close, rename into place, fsync the directory. */
  async commit(): Promise<void> {
    let open = true;
    try {
      await this.syncing;
      await fsync(this.fd);
      open = false;
      await close(this.fd);
      await rename(this.part, this.target);
    } catch (err) {
      if (open) {
        try {
          closeSync(this.fd);
        } catch {
          // the error below says what went wrong
        }
      }
      this.remove();
      throw new FileError(`cannot write ${this.target}: ${(err as Error).message}`, 'check free space and permissions; the previous file, if any, is unchanged');
    }
    keepAtExit(this.part);
    // The archive is in place now; only the rename's own durability is left.
    try {
      const dir = await opendir(dirname(this.target), 'r');
      await dir.sync().finally(() => dir.close());
    } catch (err) {
      throw new FileError(
        `wrote ${this.target}, but could not sync its directory: ${(err as Error).message}`,
        'the archive is complete; check the disk before relying on it after a crash',
      );
    }
  }

  /** Removes the part file, once its stream has closed the descriptor; the target keeps what it held before. */
  remove(): void {
    try {
      unlinkSync(this.part);
    } catch {
      // never created, or renamed
    }
    keepAtExit(this.part);
  }
}
