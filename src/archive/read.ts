import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { ArchiveError, CancelledError, ConfigError, FileError } from '../errors';
import { isBoltHead } from '../snapshot/file';
import { scanSnapshot, type SnapshotFacts, type SnapshotMemo } from '../snapshot/scan';
import { LegacyDecoder } from './legacy';
import { NativeDecoder } from './native-decode';
import { MAGIC_PREFIX } from './native-format';
import type { ArchiveDecoder, ArchiveFormat, ArchiveItem, RecordRef } from './types';

// A transaction in flight keeps the chunks its keys and values are views of, so
// smaller chunks lower restore's peak RSS; below this the per-chunk cost shows in CPU time.
const READ_CHUNK = 256 * 1024;

/** Enough of a file's start to see a bbolt meta page's magic number. */
const HEAD_BYTES = 32;

/** Tells the formats apart by the first bytes: ours starts with '#', never base64; a bbolt file with a meta page. */
export async function detectFormat(path: string): Promise<ArchiveFormat> {
  const fh = await open(path, 'r').catch((err: NodeJS.ErrnoException) => {
    throw new FileError(`cannot open archive ${path}: ${err.code ?? err.message}`, 'check the path and its permissions');
  });
  try {
    const head = Buffer.alloc(FORMAT_HEAD_BYTES);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    if (bytesRead === 0) throw emptyArchive(`the archive ${path}`);
    return formatOfHead(head.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}

/** `what` ("the archive /x") holds no byte at all. */
export const emptyArchive = (what: string): ArchiveError =>
  new ArchiveError(`${what} is empty (0 bytes)`, 'an empty input usually means the backup or the download failed; use an archive that holds data');

/** How many first bytes formatOfHead needs (fewer only if the archive is shorter). */
export const FORMAT_HEAD_BYTES = Math.max(MAGIC_PREFIX.length, HEAD_BYTES);

/** The format, from an archive's first FORMAT_HEAD_BYTES bytes (not none). */
export function formatOfHead(head: Buffer): ArchiveFormat {
  if (isBoltHead(head)) return 'etcd-snapshot';
  const start = head.subarray(0, Math.min(head.length, MAGIC_PREFIX.length)).toString('latin1');
  return start === MAGIC_PREFIX.slice(0, start.length) ? 'etcd-shield' : 'legacy';
}

export function decoderFor(format: Exclude<ArchiveFormat, 'etcd-snapshot'>, onRecord?: (record: RecordRef) => void): ArchiveDecoder {
  return format === 'etcd-shield' ? new NativeDecoder(onRecord) : new LegacyDecoder(onRecord);
}

/**
 * Streams an archive file through its decoder, handing items over a chunk's
 * worth at a time. The visitor may be async; reading waits for it.
 *
 * With onRecord, records go to it as they are decoded (no KeyRecord is built)
 * and visit gets the other items, after every chunk even when there are none.
 *
 * An etcd snapshot is read in place, as the keyspace at `revision` (default:
 * its newest); the facts it holds come back as `snapshot`. A `memo` given to
 * two scans of one unchanged file spares the second its first pass.
 */
export async function scanArchive(
  path: string,
  visit: (items: ArchiveItem[]) => void | Promise<void>,
  signal?: AbortSignal,
  onRecord?: (record: RecordRef) => void,
  revision?: string,
  memo?: SnapshotMemo,
): Promise<{ format: ArchiveFormat; bytes: number; snapshot?: SnapshotFacts }> {
  const format = await detectFormat(path);
  if (format === 'etcd-snapshot') return { format, ...(await scanSnapshot(path, visit, signal, onRecord, revision, memo)) };
  if (revision !== undefined) {
    throw new ConfigError(
      `a revision was asked for, but ${path} is an ${format} archive, which holds one revision only`,
      'drop --to-revision (or add --from STORE to replay a change log), or restore from an etcd snapshot file, which holds the history since its last compaction',
    );
  }
  const decoder = decoderFor(format, onRecord);
  let bytes = 0;
  const stream = createReadStream(path, { highWaterMark: READ_CHUNK });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (signal?.aborted) throw new CancelledError('stopped by a signal while reading the archive');
      bytes += chunk.length;
      const items = decoder.push(chunk);
      if (items.length || onRecord) await visit(items);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code && !(err instanceof ArchiveError)) {
      throw new FileError(`cannot read archive ${path}: ${(err as Error).message}`);
    }
    throw err;
  } finally {
    stream.destroy();
  }
  const last = decoder.end();
  if (last.length || onRecord) await visit(last);
  return { format, bytes };
}
