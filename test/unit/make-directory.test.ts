// mkdir -p that always answers: Node's recursive mkdir spins for ever under /proc.
import { strict as assert } from 'node:assert';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { makeDirectory } from '../../src/io/make-directory';

const dir = mkdtempSync(join(tmpdir(), 'etcd-shield-mkdir-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('makes every missing level, again without complaint, and at once from several callers', async () => {
  const deep = join(dir, 'a', 'b', 'c');
  await makeDirectory(deep);
  assert.ok(statSync(deep).isDirectory());
  await makeDirectory(deep);
  const shared = join(dir, 'x', 'y', 'z');
  await Promise.all(Array.from({ length: 8 }, () => makeDirectory(shared)));
  assert.ok(statSync(shared).isDirectory());
});

test('a file in the way is ENOTDIR', async () => {
  writeFileSync(join(dir, 'file'), 'x');
  await assert.rejects(makeDirectory(join(dir, 'file')), { code: 'ENOTDIR' });
  await assert.rejects(makeDirectory(join(dir, 'file', 'below')), { code: 'ENOTDIR' });
});

test('under /proc, where mkdir of a child fails with ENOENT although its parent exists, it fails instead of spinning', { skip: !existsSync('/proc/self'), timeout: 10_000 }, async () => {
  // The same ENOENT that sent Node's recursive mkdir round for ever: the fault is real, and answered.
  await assert.rejects(makeDirectory('/proc/etcd-shield-test/store'), (err: NodeJS.ErrnoException) => err.code === 'ENOENT' && err.path === '/proc/etcd-shield-test');
});
