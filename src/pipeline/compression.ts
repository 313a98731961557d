import { PassThrough, type Transform } from 'node:stream';
import { createGunzip, createGzip } from 'node:zlib';
import { ArchiveError, ConfigError, ShieldError } from '../errors';
import type { Compression } from './types';

type Zstd = typeof import('zstd-napi');

export const ZSTD_LEVEL = 3;
/** gzip's own default: the ratio people expect from .gz, and at ~85 MB/s it runs on libuv's threads, off the main one. */
export const GZIP_LEVEL = 6;

/**
 * One worker thread takes zstd off the main thread, which encodes the archive:
 * about 1.4x the backup rate on 2 cores. Small jobs keep the extra memory to a
 * few MB (the default, 8 MiB jobs, cost 30 MB more for no gain).
 */
const ZSTD_WORKERS = 1;
const ZSTD_JOB_BYTES = 1024 * 1024;
/**
 * Each job starts from the whole window of the data before it, as one thread
 * would. At level 3 zstd's default overlap for 1 MiB jobs is far smaller:
 * the benchmark's 100k archive stored 103.4 MB instead of 95.2 MB, for up
 * to 5% more CPU (docs/performance.md, "Stores").
 */
const ZSTD_OVERLAP_LOG = 9;

let zstd: Zstd | undefined;

/** Loaded on first use: runs that never touch zstd never load the native module, and the one-file build has none. */
function loadZstd(hint: string): Zstd {
  if (zstd) return zstd;
  try {
    zstd = require('zstd-napi') as Zstd;
  } catch (err) {
    throw new ConfigError(`zstd support is missing: the native module zstd-napi did not load (${(err as Error).message.split('\n')[0]})`, hint, { cause: err });
  }
  return zstd;
}

export interface CompressOptions {
  /**
   * zstd on a worker thread of its own (default). Off for small objects:
   * a change segment is a few MB, and the thread with its job buffers cost
   * the follower about 10 MB of RSS for nothing (docs/performance.md,
   * "Latest numbers", the change log).
   */
  threaded?: boolean;
}

/** A stage that compresses what passes through it. */
export function compressor(c: Compression, opts: CompressOptions = {}): Transform {
  switch (c) {
    case 'zstd':
      return new (loadZstd('use --compress gzip or --compress none, or the npm-installed etcd-shield, which has zstd').CompressStream)({
        compressionLevel: ZSTD_LEVEL,
        // Without it a flipped bit inside a raw block would decompress silently.
        checksumFlag: true,
        ...(opts.threaded === false ? {} : { nbWorkers: ZSTD_WORKERS, jobSize: ZSTD_JOB_BYTES, overlapLog: ZSTD_OVERLAP_LOG }),
      });
    case 'gzip':
      return createGzip({ level: GZIP_LEVEL });
    case 'none':
      return new PassThrough();
  }
}

/**
 * A stage that decompresses what passes through it. Corrupt, truncated or
 * empty input fails the stream with an ArchiveError naming `name`.
 */
export function decompressor(c: Compression, name = 'the stored archive'): Transform {
  switch (c) {
    case 'zstd': {
      const { DecompressStream } = loadZstd(`decompress it with \`zstd -d\` and give etcd-shield the plain archive, or use the npm-installed etcd-shield, which has zstd`);
      return failingAsArchive(new DecompressStream(), 'zstd', name);
    }
    case 'gzip':
      return failingAsArchive(createGunzip(), 'gzip', name);
    case 'none':
      return new PassThrough();
  }
}

/**
 * Makes the decoder's own failures ArchiveErrors, and refuses empty input,
 * which zstd-napi takes for an empty stream. Another stage's error that a
 * pipeline passes on (already a ShieldError, or an abort) stays as it is.
 */
function failingAsArchive(decoder: Transform, format: string, name: string): Transform {
  let seen = 0;
  const transform = decoder._transform;
  decoder._transform = function (chunk: Buffer, encoding, callback) {
    seen += chunk.length;
    transform.call(this, chunk, encoding, callback);
  };
  const flush = decoder._flush;
  decoder._flush = function (callback) {
    if (seen === 0) callback(new ArchiveError(`${name} is empty, not ${format} data`));
    else if (flush) flush.call(this, callback);
    else callback();
  };
  const destroy = decoder._destroy;
  decoder._destroy = function (err, callback) {
    destroy.call(this, err, (e) => callback(e && asArchiveError(e, format, name)));
  };
  return decoder;
}

function asArchiveError(err: Error, format: string, name: string): Error {
  if (err instanceof ShieldError || err.name === 'AbortError') return err;
  const ending = /unexpected end|ended in middle/i.test(err.message) ? ' (it ends early: truncated)' : '';
  return new ArchiveError(`${name} is not valid ${format}: ${err.message}${ending}`, undefined, { cause: err });
}
