import type { KeyRecord, RecordRef } from './types';

/** Byte-wise prefix test, as etcd's prefix ranges match. */
export function hasPrefix(key: Buffer, prefix: Buffer): boolean {
  return key.length >= prefix.length && key.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

/** Keys up to this long compare quicker in a loop than through Buffer.compare's native call. */
const SHORT_KEY = 64;

/** Byte-wise order of two keys, as etcd sorts them: negative, 0 or positive. */
export function compareKeys(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  if (n > SHORT_KEY) return Buffer.compare(a, b);
  for (let i = 0; i < n; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

/** A key for an error message: printable as text, else base64. */
export function showKey(key: Buffer): string {
  const text = key.toString('utf8');
  return /^[\x20-\x7e]*$/.test(text) && text.length <= 200 ? JSON.stringify(text) : `base64:${key.toString('base64').slice(0, 200)}`;
}

/** A KeyRecord seen through the RecordRef interface. */
export function recordRef(r: KeyRecord): RecordRef {
  return {
    keyLength: r.key.length,
    valueLength: r.value.length,
    hasPrefix: (prefix) => hasPrefix(r.key, prefix),
    key: () => r.key,
    value: () => r.value,
    copyKeyValue: (into, at) => {
      const k = r.key.copy(into, at);
      return k + r.value.copy(into, at + k);
    },
    lease: () => r.lease,
  };
}
