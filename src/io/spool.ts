import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { CancelledError, FileError } from '../errors';

/**
 * Copies standard input to a private file in dir. Archives are read twice
 * (verify, then write), and a pipe can be read only once.
 */
export async function spoolStdin(dir: string, signal: AbortSignal): Promise<string> {
  const path = join(dir, 'archive');
  await pipeline(process.stdin, createWriteStream(path, { mode: 0o600 }), { signal }).catch((err: Error) => {
    if (signal.aborted) throw new CancelledError('stopped by a signal while reading the archive from standard input; nothing was written to etcd');
    throw new FileError(`cannot copy standard input to ${dir}: ${err.message}`, 'check free space in $TMPDIR');
  });
  return path;
}
