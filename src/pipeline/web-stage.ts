import { Duplex } from 'node:stream';

/**
 * A byte stage around a function from a web stream to a web stream, which
 * is what age-encryption offers. Both sides pull: a write is taken only when
 * age asks for input, and age's output only when our reader asks, so the
 * stage holds a few 64 KiB chunks and backpressure passes through.
 * (Duplex.from over a PassThrough did not do: when age gave up, its cancel
 * destroyed our input first, so the stage failed with an AbortError instead
 * of the reason; and its destroy() without an error emits an AbortError,
 * which crashes a process that has no 'error' listener.)
 */
export class WebStage extends Duplex {
  private readonly source: ReadableStream<Uint8Array>;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  /** A written chunk that age has not asked for yet, and its write callback. */
  private pending: { chunk: Uint8Array; taken: () => void } | undefined;
  /** age asked for a chunk that was not written yet. */
  private wanted: (() => void) | undefined;
  /** Our reader's buffer was full; called on its next read. */
  private readMore: (() => void) | undefined;
  private reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  private started = false;

  constructor(
    private readonly run: (input: ReadableStream<Uint8Array>) => Promise<ReadableStream<Uint8Array>>,
    private readonly mapError: (err: unknown) => Error,
  ) {
    super();
    this.source = new ReadableStream<Uint8Array>(
      {
        start: (controller) => void (this.controller = controller),
        pull: () => new Promise<void>((resolve) => ((this.wanted = resolve), this.handOver())),
      },
      { highWaterMark: 0 },
    );
  }

  private handOver(): void {
    if (!this.pending || !this.wanted) return;
    const { chunk, taken } = this.pending;
    const wanted = this.wanted;
    this.pending = this.wanted = undefined;
    this.controller.enqueue(chunk);
    wanted();
    taken();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.pending = { chunk, taken: callback };
    this.handOver();
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.controller.close();
    callback();
  }

  override _read(): void {
    const readMore = this.readMore;
    this.readMore = undefined;
    if (readMore) readMore();
    else if (!this.started) {
      this.started = true;
      void this.pump();
    }
  }

  private async pump(): Promise<void> {
    try {
      this.reader = (await this.run(this.source)).getReader();
      for (;;) {
        if (this.destroyed) return void this.reader.cancel().catch(() => undefined);
        const { done, value } = await this.reader.read();
        if (done) return void this.push(null);
        if (!this.push(value)) await new Promise<void>((resolve) => (this.readMore = resolve));
      }
    } catch (err) {
      this.destroy(this.mapError(err));
    }
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    try {
      this.controller.error(err ?? new Error('stage destroyed'));
    } catch {
      /* the source was closed already */
    }
    this.reader?.cancel().catch(() => undefined);
    this.readMore?.();
    callback(err);
  }
}
