// Store URLs and keys: what each form means, and a usable refusal for the rest.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { StoreError, UsageError } from '../../src/errors';
import { DirectoryStore } from '../../src/store/directory';
import { checkKey } from '../../src/store/keys';
import { openStore } from '../../src/store/open';
import { S3Store } from '../../src/store/s3';
import { deniedOnly, s3Error } from '../../src/store/s3-errors';
import { parseStoreUrl } from '../../src/store/url';

const CWD = '/home/op/work';

test('a path or a file: URL is a directory, a relative one taken from cwd', () => {
  const cases: [string, string][] = [
    ['/var/backups/etcd', '/var/backups/etcd'],
    ['/var/backups/etcd/', '/var/backups/etcd'],
    ['backups', '/home/op/work/backups'],
    ['./a/../b', '/home/op/work/b'],
    ['../up', '/home/op/up'],
    ['./odd:name', '/home/op/work/odd:name'],
    ['file:///var/backups/etcd', '/var/backups/etcd'],
    ['file:///var/my%20backups/', '/var/my backups'],
    ['FILE:///srv/x', '/srv/x'],
  ];
  for (const [url, path] of cases) assert.deepEqual(parseStoreUrl(url, CWD), { kind: 'dir', path }, url);
});

test('s3://bucket/prefix: the prefix without its outer slashes, possibly empty', () => {
  const cases: [string, string, string][] = [
    ['s3://bucket', 'bucket', ''],
    ['s3://bucket/', 'bucket', ''],
    ['s3://bucket/some/prefix', 'bucket', 'some/prefix'],
    ['s3://bucket/some/prefix/', 'bucket', 'some/prefix'],
    ['s3://my.bucket-1/etcd', 'my.bucket-1', 'etcd'],
  ];
  for (const [url, bucket, prefix] of cases) assert.deepEqual(parseStoreUrl(url, CWD), { kind: 's3', bucket, prefix }, url);
});

test('anything else is a UsageError with an example of a valid URL, never echoing credentials', () => {
  const cases: [string, RegExp][] = [
    ['', /it is empty/],
    ['http://example.com/backups', /http: is not a store scheme/],
    ['https://bucket.s3.amazonaws.com/x', /https: is not a store scheme/],
    ['s3:bucket/x', /an S3 store is written s3:\/\/bucket/],
    ['s3://', /the bucket name is missing/],
    ['s3:///prefix', /the bucket name is missing/],
    ['s3://bucket/a//b', /empty segment/],
    ['s3://bucket/p?versionId=1', /no query or fragment/],
    ['s3://bad bucket/p', /is not a bucket name/],
    ['file://host/dir', /has no host \("host"\)/],
    ['file:///dir?x=1', /no query or fragment/],
    ['c:dir', /c: is not a store scheme/],
  ];
  for (const [url, why] of cases) {
    assert.throws(
      () => parseStoreUrl(url, CWD),
      (err: unknown) => err instanceof UsageError && why.test(err.message) && err.hint.includes('s3://bucket/prefix') && err.hint.includes('file:///'),
      url,
    );
  }
  assert.throws(
    () => parseStoreUrl('s3://AKIAEXAMPLE:topsecret@bucket/p', CWD),
    (err: unknown) => err instanceof UsageError && !err.message.includes('topsecret') && !err.message.includes('AKIAEXAMPLE') && /not in the URL/.test(err.message),
  );
});

test('openStore picks the store for the URL, contacting nothing', () => {
  const dir = openStore('backups', { cwd: CWD });
  assert.ok(dir instanceof DirectoryStore);
  assert.equal(dir.url, 'file:///home/op/work/backups');
  const s3 = openStore('s3://bucket/team/etcd/', { cwd: CWD, s3: { endpoint: 'http://127.0.0.1:1', region: 'eu-west-1' } });
  assert.ok(s3 instanceof S3Store);
  assert.equal(s3.url, 's3://bucket/team/etcd');
  assert.equal(openStore('s3://bucket', { cwd: CWD }).url, 's3://bucket');
  s3.close();
});

test('keys are plain names', () => {
  for (const key of ['etcd-2026-12-02T07-00-00Z.zst.age', 'a', 'manifest.json', 'x..y']) checkKey(key, 's3://b');
  for (const key of ['', 'a/b', '.hidden', '.', '..', 'new\nline', 'x'.repeat(201)]) {
    assert.throws(() => checkKey(key, 's3://b/p'), (err: unknown) => err instanceof UsageError && err.message.includes('cannot be a key in s3://b/p'), JSON.stringify(key));
  }
});

test('S3 errors: only a refusal of the one request (AccessDenied) lets a write-only key past the check before a snapshot', () => {
  const call = { storeUrl: 's3://b/p', bucket: 'b', endpoint: 'https://s3.example', doing: 'checking s3://b/p' };
  const sdk = (name: string, status: number) => Object.assign(new Error(`${name} said no`), { name, $metadata: { httpStatusCode: status } });
  const denied = s3Error(sdk('AccessDenied', 403), call);
  assert.ok(denied instanceof StoreError && deniedOnly(denied), denied.message);
  for (const [name, status] of [['InvalidAccessKeyId', 403], ['SignatureDoesNotMatch', 403], ['NoSuchBucket', 404]] as const) {
    assert.equal(deniedOnly(s3Error(sdk(name, status), call)), false, name);
  }
});
