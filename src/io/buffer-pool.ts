/**
 * Buffers for encoded pages, given back once written. A page-sized buffer
 * fresh from the allocator is new memory: the kernel faults in and zeroes
 * every page of it, and V8 counts it towards the external memory that
 * starts full collections. Reused, it costs neither.
 */
export class BufferPool {
  private readonly free: Buffer[] = [];

  constructor(private readonly keep = 2) {}

  /** At least size bytes; a quarter more when new, so pages a little larger than the last still fit. */
  take(size: number): Buffer {
    const buf = this.free.pop();
    return buf && buf.length >= size ? buf : Buffer.allocUnsafe(Math.ceil(size * 1.25));
  }

  give(buf: Buffer): void {
    if (this.free.length < this.keep) this.free.push(buf);
  }
}
