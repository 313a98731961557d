import { StoreError } from '../errors';
import { DirectoryStore } from './directory';
import type { S3StoreOptions } from './s3';
import type { ObjectStore } from './types';
import { parseStoreUrl } from './url';

/** How to reach an S3 store beyond its URL; anything not given comes from the AWS SDK's default chain. */
export type S3Settings = Pick<S3StoreOptions, 'endpoint' | 'forcePathStyle' | 'caFile' | 'region' | 'credentials'>;

/** The store a URL names: a directory (relative to cwd) or s3://bucket/prefix. Nothing is contacted yet. */
export function openStore(url: string, opts: { cwd: string; s3?: S3Settings }): ObjectStore {
  const where = parseStoreUrl(url, opts.cwd);
  if (where.kind === 'dir') return new DirectoryStore(where.path);
  // Loaded only for S3: the AWS SDK costs a directory store a tenth of a second of start-up.
  let s3: typeof import('./s3');
  try {
    s3 = require('./s3') as typeof import('./s3');
  } catch (err) {
    throw new StoreError(`S3 support is missing: the AWS SDK did not load (${(err as Error).message.split('\n')[0]})`, 'use the npm-installed etcd-shield for s3:// stores; the one-file SHIELD plugin leaves the AWS SDK out', { cause: err });
  }
  const { S3Store } = s3;
  return new S3Store({ ...opts.s3, bucket: where.bucket, prefix: where.prefix });
}
