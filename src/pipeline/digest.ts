import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/** Passes bytes on unchanged while it counts them and hashes them with SHA-256. */
export class Digest extends Transform {
  bytes = 0;
  private readonly hash: Hash = createHash('sha256');

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
    callback(null, chunk);
  }

  /** Hex SHA-256 of every byte passed so far: of the whole stream once it ended. */
  sha256(): string {
    return this.hash.copy().digest('hex');
  }
}
