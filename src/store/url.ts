import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../errors';

export type StoreLocation = { kind: 'dir'; path: string } | { kind: 's3'; bucket: string; prefix: string };

const EXAMPLES = 'a directory (/var/backups/etcd, ./backups, file:///var/backups/etcd) or s3://bucket/prefix';
const SCHEME = /^([a-z][a-z0-9+.-]*):/i;

/** Where a store URL points; a relative directory is taken from `cwd`. */
export function parseStoreUrl(url: string, cwd: string): StoreLocation {
  if (url.trim() === '') throw bad(url, 'it is empty');
  const scheme = SCHEME.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined) return { kind: 'dir', path: isAbsolute(url) ? resolve(url) : resolve(cwd, url) };
  if (scheme === 's3') return parseS3(url);
  if (scheme === 'file') return { kind: 'dir', path: parseFile(url) };
  throw bad(url, `${scheme}: is not a store scheme (a directory name with a colon is written ./name)`);
}

function parseS3(url: string): StoreLocation {
  const m = /^s3:\/\/([^/?#]*)(\/[^?#]*)?$/i.exec(url);
  if (!m) throw bad(url, 'an S3 store is written s3://bucket or s3://bucket/prefix, with no query or fragment');
  const bucket = m[1]!;
  // Credentials belong to the AWS environment or profile, never to a URL that is shown back.
  if (bucket.includes('@')) throw bad(url, 'credentials go in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile, not in the URL');
  if (bucket === '') throw bad(url, 'the bucket name is missing');
  if (!/^[a-z0-9][a-z0-9.\-_]*$/i.test(bucket)) throw bad(url, `"${bucket}" is not a bucket name (letters, digits, dots, hyphens)`);
  const prefix = (m[2] ?? '').replace(/^\/+|\/+$/g, '');
  if (prefix.includes('//')) throw bad(url, 'the prefix has an empty segment (//)');
  return { kind: 's3', bucket, prefix };
}

function parseFile(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw bad(url, 'it is not a valid file: URL');
  }
  if (parsed.host !== '') throw bad(url, `a file: URL names a local directory, so it has no host ("${parsed.host}"); write file:///abs/dir`);
  if (parsed.search || parsed.hash) throw bad(url, 'a file: URL takes no query or fragment');
  return resolve(fileURLToPath(parsed));
}

function bad(url: string, why: string): UsageError {
  return new UsageError(`store URL "${redact(url)}" is not usable: ${why}`, `give ${EXAMPLES}`);
}

/** A URL as it may be shown: any user:password@ removed. */
function redact(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1***@');
}
