import { CancelledError } from '../errors';

/** Maps with at most `limit` calls in flight; results keep the input order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  signal: AbortSignal | undefined,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const run = limiter(limit, signal);
  return Promise.all(items.map((item) => run(() => fn(item))));
}

/**
 * Runs calls as they come, at most `limit` at a time; the others wait for
 * a free slot. Once the signal fires, calls that have not started fail.
 */
export function limiter(limit: number, signal?: AbortSignal): <R>(fn: () => Promise<R>) => Promise<R> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (fn) => {
    while (active >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
    if (signal?.aborted) {
      // This caller was handed a free slot it will not use: pass it on, or
      // the callers behind it would wait for ever.
      waiting.shift()?.();
      throw new CancelledError('stopped by a signal');
    }
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}
