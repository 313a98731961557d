import { createWriteStream, realpathSync, statSync, writeSync, WriteStream, type Stats } from 'node:fs';
import type { Writable } from 'node:stream';
import { FileError, OutputClosedError, ShieldError } from '../errors';
import { PartFile } from './part-file';

/**
 * Buffer of every stream that writes an archive to a file or a pipe. With
 * Node's default 16 KiB, each 64 KiB chunk waited for its write, and the
 * stages before it sat idle (docs/performance.md, "Stores").
 */
export const WRITE_BUFFER_BYTES = 1024 * 1024;

/**
 * A Writable with backpressure as a promise: write() resolves once the
 * stream can take more, so memory stays bounded however slow the reader is.
 */
export class Sink {
  private failure: ShieldError | undefined;
  bytes = 0;
  /**
   * A file stream is done with a buffer once its write callback runs, so the
   * caller may reuse it. Any other stream may still hold the very buffer
   * (a PassThrough hands it on, an upload queues it), so it gets a copy.
   */
  private readonly releasesOnWrite: boolean;
  /** The part file's descriptor when writes go straight to it (Sink.file with synchronous). */
  private syncFd: number | undefined;

  constructor(
    private readonly stream: Writable,
    private readonly name: string,
    private readonly part?: PartFile,
    /** The stream is known to be done with each buffer once its write callback runs (a compressor copies what it is given). */
    releasesOnWrite = false,
  ) {
    this.releasesOnWrite = releasesOnWrite || stream instanceof WriteStream;
    stream.on('error', (err: NodeJS.ErrnoException) => {
      this.failure ??= this.writeFailure(err);
    });
  }

  /**
   * A regular file (new, or through a symlink) is written as a part file and
   * renamed into place by end(); a device or a FIFO (/dev/null, a named pipe)
   * is written as it is.
   */
  static file(path: string, opts: { synchronous?: boolean } = {}): Sink {
    let existing: Stats | undefined;
    let target = path;
    try {
      existing = statSync(path, { throwIfNoEntry: false });
      if (existing?.isFile()) target = realpathSync(path);
    } catch (err) {
      throw new FileError(`cannot write ${path}: ${(err as Error).message}`, 'check the path and the permissions of its directories');
    }
    if (existing && !existing.isFile()) return new Sink(createWriteStream(path, { highWaterMark: WRITE_BUFFER_BYTES }), path);
    const part = PartFile.open(target);
    const sink = new Sink(createWriteStream('', { fd: part.fd, autoClose: false, highWaterMark: WRITE_BUFFER_BYTES }), path, part);
    if (opts.synchronous) sink.syncFd = part.fd;
    return sink;
  }

  /** Writes go out before write() returns (Sink.file with synchronous): writeSync() may be used. */
  get synchronous(): boolean {
    return this.syncFd !== undefined;
  }

  /** write() without the promise, for a synchronous sink: a stream of small messages spares a turn of the event loop each. */
  writeSync(buf: Buffer): void {
    if (this.failure) throw this.failure;
    if (this.syncFd === undefined) throw new Error('writeSync() on a sink that is not synchronous');
    this.bytes += buf.length;
    this.part?.wrote(buf.length);
    this.writeNow(this.syncFd, buf);
  }

  /** `written` runs once buf has gone out (or failed to): then the caller may reuse it. */
  async write(buf: Buffer, written?: () => void): Promise<void> {
    if (this.syncFd !== undefined) {
      this.writeSync(buf);
      written?.();
      return;
    }
    if (this.failure) throw this.failure;
    this.bytes += buf.length;
    this.part?.wrote(buf.length);
    let ok: boolean;
    if (this.releasesOnWrite || !written) ok = this.stream.write(buf, written && (() => written()));
    else {
      ok = this.stream.write(Buffer.from(buf));
      written();
    }
    if (ok) return;
    // A destroyed stream has sent (or is about to send) its last event: waiting for a drain would hang.
    if (this.stream.destroyed) {
      const cause = (this.stream.errored as NodeJS.ErrnoException | null) ?? Object.assign(new Error('closed'), { code: 'EPIPE' });
      throw (this.failure ??= this.writeFailure(cause));
    }
    await new Promise<void>((resolve) => {
      const done = () => {
        this.stream.off('drain', done);
        this.stream.off('error', done);
        this.stream.off('close', done);
        resolve();
      };
      this.stream.on('drain', done);
      this.stream.on('error', done);
      this.stream.on('close', done);
    });
    if (this.failure) throw this.failure;
  }

  /**
   * Many small writes (a snapshot's 32 KiB messages) cost more as trips
   * through the thread pool than as plain write calls: at 1M keys a quarter
   * of snapshot mode's CPU (docs/performance.md, "Snapshot mode"). Only for
   * a regular file, whose writes never wait on a reader.
   */
  private writeNow(fd: number, buf: Buffer): void {
    try {
      for (let at = 0; at < buf.length; ) at += writeSync(fd, buf, at);
    } catch (err) {
      this.failure ??= this.writeFailure(err as NodeJS.ErrnoException);
      throw this.failure;
    }
  }

  private writeFailure(err: NodeJS.ErrnoException): ShieldError {
    return err.code === 'EPIPE' || err.code === 'ECONNRESET'
      ? new OutputClosedError(
          `the reader of ${this.name} went away before the archive was complete (broken pipe)`,
          'the process that stores the backup stopped; check its own error message',
        )
      : new FileError(`cannot write ${this.name}: ${err.message}`, 'check free space and permissions');
  }

  /** Flushes and closes (a file: onto disk, under its name); throws if any write failed. */
  async end(): Promise<void> {
    await this.flush();
    if (this.failure) {
      await this.abandon();
      throw this.failure;
    }
    await this.part?.commit();
  }

  /**
   * After a failed run: a file keeps what it held before; a stream gets what
   * was written, which restore refuses anyway, as it has no trailer.
   */
  async abandon(): Promise<void> {
    if (!this.part) return this.flush();
    // destroy() waits for writes in progress, then closes the descriptor (autoClose or not).
    if (!this.stream.closed) await new Promise<void>((resolve) => this.stream.once('close', () => resolve()).destroy());
    this.part.remove();
  }

  private async flush(): Promise<void> {
    if (this.failure || this.stream.destroyed) return;
    await new Promise<void>((resolve) => {
      this.stream.once('error', () => resolve());
      this.stream.end(() => resolve());
    });
  }
}
