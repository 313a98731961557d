import { finished, PassThrough, type Readable } from 'node:stream';
import { CancelledError, ShieldError, StoreError } from '../errors';

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A put's body failed: our own errors stay what they are, anything else names the object it was for. */
export function bodyFailure(err: unknown, key: string, storeUrl: string): ShieldError {
  if (err instanceof ShieldError) return err;
  return new StoreError(
    `writing ${key} to ${storeUrl} stopped: the data being written failed before its end (${messageOf(err)})`,
    'the stream that feeds the store failed; its own error says why',
    { cause: err },
  );
}

export function cancelled(doing: string): CancelledError {
  return new CancelledError(`stopped by a signal while ${doing}`);
}

/**
 * `source` as the caller reads it: its failures arrive as typed errors, and
 * the signal stops it. Destroying the result destroys the source.
 */
export function guarded(source: Readable, mapError: (err: unknown) => ShieldError, doing: string, signal?: AbortSignal): Readable {
  const out = new PassThrough({ highWaterMark: 1024 * 1024 });
  const onAbort = () => out.destroy(cancelled(doing));
  finished(source, (err) => {
    if (err && !out.destroyed) out.destroy(signal?.aborted ? cancelled(doing) : mapError(err));
  });
  out.once('close', () => {
    signal?.removeEventListener('abort', onAbort);
    source.destroy();
  });
  if (signal?.aborted) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  source.pipe(out);
  return out;
}

/** The whole stream, refusing it as soon as it passes maxBytes. */
export async function readAtMost(stream: Readable, maxBytes: number, tooLarge: () => ShieldError): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    if (bytes > maxBytes) {
      stream.destroy();
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, bytes);
}

export function tooLarge(key: string, storeUrl: string, maxBytes: number): StoreError {
  return new StoreError(
    `${key} in ${storeUrl} is over ${maxBytes} bytes, more than such an object holds`,
    'the object is not one etcd-shield wrote; remove or rename it',
  );
}
