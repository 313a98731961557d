import type { Readable } from 'node:stream';
import { spool } from '../io/spool';
import { withTempDir } from '../io/tempdir';
import { ArchiveInput, isFile } from './options';

/** Runs fn on a path holding the archive: the file itself, or a private copy of the stream, removed afterwards. */
export async function withArchiveFile<T>(
  input: ArchiveInput,
  name: string | undefined,
  signal: AbortSignal | undefined,
  fn: (path: string) => Promise<T>,
): Promise<T> {
  if (isFile(input)) return fn(input.file);
  return withTempDir(async (dir) => fn(await spool(input as Readable, name ?? 'the input stream', dir, signal)));
}
