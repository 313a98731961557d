/** New buffers get a quarter more than asked, so pages a little larger than the last still fit. */
const HEADROOM = 1.25;

/**
 * Buffers for encoded pages, given back once written. A page-sized buffer
 * fresh from the allocator is new memory: the kernel faults in and zeroes
 * every page of it, and V8 counts it towards the external memory that
 * starts full collections. Reused, it costs neither.
 *
 * With `usualBytes`, a buffer made for something larger (a value of several
 * MiB) is used once and not kept: kept, it would go round in place of a
 * usual one, resident at its full size, one more for each large value (a
 * restore of multi-MiB values peaked 20-30 MB higher).
 */
export class BufferPool {
  private readonly free: Buffer[] = [];
  private readonly largestKept: number;

  constructor(
    private readonly keep = 2,
    usualBytes = Infinity,
  ) {
    this.largestKept = Math.ceil(usualBytes * HEADROOM);
  }

  /** At least size bytes. */
  take(size: number): Buffer {
    const buf = this.free.pop();
    if (buf && buf.length >= size) return buf;
    // Too small for this one, still right for the next usual one.
    if (buf) this.free.push(buf);
    return Buffer.allocUnsafe(Math.ceil(size * HEADROOM));
  }

  give(buf: Buffer): void {
    if (this.free.length < this.keep && buf.length <= this.largestKept) this.free.push(buf);
  }
}
