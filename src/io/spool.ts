import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { CancelledError, FileError, ShieldError } from '../errors';
import { WRITE_BUFFER_BYTES } from './sink';
import { TEMP_ROOM_HINT } from './tempdir';

/** A private file to copy an archive into. */
export const privateCopy = (path: string) => createWriteStream(path, { mode: 0o600, highWaterMark: WRITE_BUFFER_BYTES });

/**
 * Copies a stream to a private file in dir. Archives are read twice
 * (verify, then write), and a stream can be read only once.
 */
export async function spool(input: Readable, name: string, dir: string, signal?: AbortSignal): Promise<string> {
  const path = join(dir, 'archive');
  await pipeline(input, privateCopy(path), { signal }).catch((err: Error) => {
    if (signal?.aborted) throw new CancelledError(`stopped while reading the archive from ${name}; nothing was written to etcd`);
    if (err instanceof ShieldError) throw err; // a decoding stage's own verdict
    throw new FileError(`cannot copy ${name} to ${dir}: ${err.message}`, TEMP_ROOM_HINT);
  });
  return path;
}
