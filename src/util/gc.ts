/**
 * Page objects live just long enough to be promoted to V8's old generation,
 * which then grows for a long while before a full collection: RSS climbs
 * with the keyspace although the live data stays small. A full collection
 * every so many bytes keeps memory flat for a few milliseconds each.
 * bin/etcd-shield starts node with --expose-gc; without it this does nothing.
 */
const collect = (globalThis as { gc?: () => void }).gc;
const EVERY_BYTES = 64 * 1024 * 1024;
let since = 0;

export function collectGarbageAfter(bytes: number): void {
  since += bytes;
  if (since >= EVERY_BYTES) collectGarbageNow();
}

/** After a burst of short-lived objects (a page of tens of thousands of keys). */
export function collectGarbageNow(): void {
  since = 0;
  collect?.();
}
