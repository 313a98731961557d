import { closeSync, createReadStream, openSync, readSync, statSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { FileError } from '../errors';
import { spool } from '../io/spool';
import { withTempDir } from '../io/tempdir';
import { detectStoredForm, openStored } from '../pipeline/stages';
import { ArchiveInput, isFile } from './options';

/** Enough of a file's start to tell age, zstd and gzip from a plain archive. */
const HEAD_BYTES = 64;

/**
 * Runs fn on a path holding the plain archive: the file itself, or a
 * private copy of the stream, removed afterwards. A compressed or
 * age-encrypted input (as `zstd`, `gzip` or `age` wrote it) is decoded
 * into that copy first, with the given identities.
 */
export async function withArchiveFile<T>(
  input: ArchiveInput,
  name: string | undefined,
  signal: AbortSignal | undefined,
  fn: (path: string) => Promise<T>,
  identities: string[] = [],
): Promise<T> {
  const label = isFile(input) ? input.file : (name ?? 'the input stream');
  if (isFile(input)) {
    refuseDirectory(input.file);
    const form = detectStoredForm(readHead(input.file));
    if (form.compression === 'none' && !form.encrypted) return fn(input.file);
  }
  const stream = isFile(input) ? createReadStream(input.file) : (input as Readable);
  return withTempDir(async (dir) => fn(await spool(await openStored(stream, { identities, name: label }), label, dir, signal)));
}

/** A directory given as --in is most likely a directory store, meant for --from. */
function refuseDirectory(path: string): void {
  let dir = false;
  try {
    dir = statSync(path).isDirectory();
  } catch {
    return; // the archive reader reports a missing or unreadable file, as for any archive
  }
  if (dir) throw new FileError(`${path} is a directory, not an archive or snapshot file`, `give the path of a file to --in, or read a directory store with --from ${path}`);
}

function readHead(path: string): Buffer {
  const head = Buffer.alloc(HEAD_BYTES);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return Buffer.alloc(0); // the archive reader reports it, as for any archive
  }
  try {
    return head.subarray(0, readSync(fd, head, 0, HEAD_BYTES, 0));
  } finally {
    closeSync(fd);
  }
}
