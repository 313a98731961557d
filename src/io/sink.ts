import { createWriteStream } from 'node:fs';
import type { Writable } from 'node:stream';
import { FileError, OutputClosedError, ShieldError } from '../errors';

/**
 * A Writable with backpressure as a promise: write() resolves once the
 * stream can take more, so memory stays bounded however slow the reader is.
 */
export class Sink {
  private failure: ShieldError | undefined;
  bytes = 0;

  constructor(
    private readonly stream: Writable,
    name: string,
  ) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      this.failure ??=
        err.code === 'EPIPE' || err.code === 'ECONNRESET'
          ? new OutputClosedError(
              `the reader of ${name} went away before the archive was complete (broken pipe)`,
              'the process that stores the backup stopped; check its own error message',
            )
          : new FileError(`cannot write ${name}: ${err.message}`, 'check free space and permissions');
    });
  }

  /** Standard output through a file stream: writes go to the thread pool and report EPIPE as an error. */
  static stdout(): Sink {
    return new Sink(createWriteStream('', { fd: 1, autoClose: false, highWaterMark: 1024 * 1024 }), 'standard output');
  }

  static file(path: string): Sink {
    return new Sink(createWriteStream(path, { mode: 0o600, highWaterMark: 1024 * 1024 }), path);
  }

  /** `written` runs once buf has gone out (or failed to): then the caller may reuse it. */
  async write(buf: Buffer, written?: () => void): Promise<void> {
    if (this.failure) throw this.failure;
    this.bytes += buf.length;
    if (this.stream.write(buf, written && (() => written()))) return;
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

  /** Flushes and closes; throws if any write failed. */
  async end(): Promise<void> {
    if (!this.failure && !this.stream.destroyed) {
      await new Promise<void>((resolve) => {
        this.stream.once('error', () => resolve());
        this.stream.end(() => resolve());
      });
    }
    if (this.failure) throw this.failure;
  }

  /** Stops without flushing more; used when the run failed anyway. */
  abort(): void {
    this.stream.destroy();
  }
}
