import { createHash, type Hash } from 'node:crypto';
import { TRAILER_BYTES } from './file';

/**
 * Follows a snapshot as it streams by: etcd sends the database, then a
 * sha256 of it. Everything but the newest 32 bytes goes into the hash, so
 * at the end those 32 bytes are what the stream claims the hash is.
 */
export class TrailerCheck {
  private readonly hash: Hash = createHash('sha256');
  private tail = Buffer.alloc(0);
  bytes = 0;

  update(chunk: Buffer): void {
    this.bytes += chunk.length;
    const all = this.tail.length ? Buffer.concat([this.tail, chunk]) : chunk;
    const cut = Math.max(0, all.length - TRAILER_BYTES);
    this.hash.update(all.subarray(0, cut));
    // A copy: the chunk may be large, and it belongs to the writer.
    this.tail = Buffer.from(all.subarray(cut));
  }

  /** The sha256 (hex) if the stream ended with the hash of what came before it; else why not. */
  finish(): { ok: true; sha256: string } | { ok: false; problem: string } {
    if (this.bytes <= TRAILER_BYTES) return { ok: false, problem: `it ended after ${this.bytes} bytes, before any database` };
    const digest = this.hash.digest();
    if (!digest.equals(this.tail)) {
      return { ok: false, problem: `its last 32 bytes are not the sha256 of the ${this.bytes - TRAILER_BYTES} bytes before them (the stream was cut short or damaged)` };
    }
    return { ok: true, sha256: digest.toString('hex') };
  }
}
