import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { ProgressEvent } from '../api/options';

type Gc = (options: { type: 'minor' }) => void;

/**
 * A progress handler that asks V8 for a young-generation collection every
 * `every` bytes. A snapshot arrives as 32 KiB messages, each in Buffers of
 * its own that V8 frees only when it collects; left to itself it lets them
 * pile up to about 50 MB first. One scavenge per 4 MiB keeps snapshot mode
 * near 80 MB at any size, for about the same total GC time
 * (docs/performance.md, "Snapshot mode"). V8's gc() is exposed to a new
 * context at run time, so no node flag is needed; if that fails, nothing is
 * collected early.
 */
export function scavengeEvery(every: number): (event: ProgressEvent) => void {
  let gc: Gc | undefined;
  try {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as Gc;
  } catch {
    gc = undefined;
  }
  let next = every;
  return ({ done }) => {
    if (!gc || done < next) return;
    next = done + every;
    gc({ type: 'minor' });
  };
}
