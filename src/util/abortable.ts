import { CancelledError } from '../errors';

/**
 * Settles with `work`, or rejects with a CancelledError as soon as `signal`
 * aborts, without waiting for it: a call to a frozen etcd member can hang
 * for its whole deadline and retries. The caller must then release what
 * `work` holds (close the connection); its late outcome is ignored.
 */
export function abortable<T>(work: Promise<T>, signal: AbortSignal | undefined, what: string): Promise<T> {
  if (!signal) return work;
  work.catch(() => undefined);
  if (signal.aborted) return Promise.reject(new CancelledError(`${what} stopped by a signal`));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new CancelledError(`${what} stopped by a signal`));
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
