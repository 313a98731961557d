import { openStore, type S3Settings } from '../store/open';
import type { ObjectStore } from '../store/types';

/** A store URL (a directory path, file:///dir, s3://bucket/prefix) or a store already open. */
export type StoreRef = string | ObjectStore;

export interface StoreOptions {
  /** Settings for s3:// URLs; credentials and region otherwise come from the AWS SDK's standard chain. */
  s3?: S3Settings;
  /** A relative directory path is taken from here (default: the process's directory). */
  cwd?: string;
}

/** Opens the store for the length of fn, and closes it unless the caller passed it open. */
export async function withStore<T>(ref: StoreRef, opts: StoreOptions, fn: (store: ObjectStore) => Promise<T>): Promise<T> {
  if (typeof ref !== 'string') return fn(ref);
  const store = openStore(ref, { cwd: opts.cwd ?? '.', s3: opts.s3 });
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}
