import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { sweepDeadRuns, withTempDir } from '../../src/io/tempdir';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tempdir-test-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));

test("the temporary directories of dead runs are swept; a live run's, and anything else, are not", async () => {
  // A process that has exited: its pid names a run that was killed.
  const dead = spawnSync('true').pid!;
  const made = (name: string) => {
    fs.mkdirSync(path.join(root, name));
    fs.writeFileSync(path.join(root, name, 'snapshot.db'), 'x'.repeat(1000));
    return name;
  };
  const stale = made(`etcd-shield-${dead}-AbC123`);
  const kept = [made(`etcd-shield-${process.pid}-mine`), made('etcd-shield-1-init'), made('etcd-shield-old-style'), made('other-tool-123-x')];
  fs.writeFileSync(path.join(root, `etcd-shield-${dead}-file`), 'a file, not a directory');
  // A link of that name to someone's directory: neither it nor what it points at is touched.
  fs.symlinkSync(path.join(root, 'other-tool-123-x'), path.join(root, `etcd-shield-${dead}-link`));
  kept.push(`etcd-shield-${dead}-file`, `etcd-shield-${dead}-link`);

  assert.deepEqual(sweepDeadRuns(root), [path.join(root, stale)]);
  assert.deepEqual(fs.readdirSync(root).sort(), kept.sort());
  assert.ok(fs.existsSync(path.join(root, 'other-tool-123-x', 'snapshot.db')));
  assert.deepEqual(sweepDeadRuns(path.join(root, 'missing')), []);
});

test('withTempDir names its directory after this process and removes it', async () => {
  const seen = await withTempDir(async (dir) => {
    assert.match(path.basename(dir), new RegExp(`^etcd-shield-${process.pid}-`));
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    return dir;
  });
  assert.ok(!fs.existsSync(seen));
});
