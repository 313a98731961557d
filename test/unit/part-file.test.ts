import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { PartFile, partName, partTarget } from '../../src/io/part-file';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'part-file-test-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('part file names: .NAME.PID.part, and back', () => {
  assert.equal(partName('x.archive', 42), '.x.archive.42.part');
  assert.equal(partTarget('.x.archive.42.part'), 'x.archive');
  assert.equal(partTarget('.x.archive.part'), undefined);
  assert.equal(partTarget('x.archive.42.part'), undefined);
});

test("opening a part file removes the target's part files of dead runs, and nothing else", async () => {
  const target = path.join(dir, 'etcd.archive');
  const dead = spawnSync('true').pid!;
  const write = (name: string) => fs.writeFileSync(path.join(dir, name), 'left by a killed run');
  write(partName('etcd.archive', dead)); // this target, a dead process: removed
  write(partName('etcd.archive', 1)); // init never dies: a live writer, kept
  write(partName('other.archive', dead)); // another target: kept
  const part = PartFile.open(target);
  fs.closeSync(part.fd);
  part.remove();
  assert.deepEqual(fs.readdirSync(dir).sort(), [partName('etcd.archive', 1), partName('other.archive', dead)].sort());
});
