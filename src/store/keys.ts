import { UsageError } from '../errors';

/** Leaves room for the part file's name (.KEY.PID.part) within a file system's 255 bytes. */
const MAX_KEY_BYTES = 200;

/**
 * Why `key` cannot name an object, if it cannot. A key is one plain name,
 * the same in every store: no "/", and no leading "." (a directory store
 * keeps its unfinished writes under such names).
 */
export function keyProblem(key: string): string | undefined {
  if (key === '') return 'it is empty';
  if (key.includes('/')) return 'it contains "/"';
  if (key.startsWith('.')) return 'it starts with "."';
  if (/[\u0000-\u001f\u007f]/.test(key)) return 'it contains a control character';
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) return `it is longer than ${MAX_KEY_BYTES} bytes`;
  return undefined;
}

export function checkKey(key: string, storeUrl: string): void {
  const why = keyProblem(key);
  if (why) throw new UsageError(`${JSON.stringify(key)} cannot be a key in ${storeUrl}: ${why}`, 'name objects with letters, digits, "-", "_" and "."');
}
