import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { KeyIndex } from '../../src/util/key-index';

test('KeyIndex agrees with a Map over many keys, repeats, binary and large keys', () => {
  const index = new KeyIndex();
  const model = new Map<string, number>();
  const keys: Buffer[] = [];
  for (let i = 0; i < 50_000; i++) keys.push(Buffer.from(`/registry/pods/ns${i % 97}/pod-${i}`));
  for (let i = 0; i < 2000; i++) keys.push(randomBytes(1 + (i % 40)));
  keys.push(randomBytes(5 * 1024 * 1024), Buffer.from([0]), Buffer.from([0, 0]), Buffer.from('after the large key'));
  let n = 0;
  for (let round = 0; round < 3; round++) {
    for (let i = round; i < keys.length; i += 1 + round) {
      index.set(keys[i]!, n);
      model.set(keys[i]!.toString('latin1'), n++);
    }
  }
  assert.equal(index.size, model.size);
  const firstSet = [...new Map(keys.map((k) => [k.toString('latin1'), k])).values()];
  assert.ok(firstSet.every((k, e) => index.key(e).equals(k)), 'key(e) gives the keys in the order first set');
  for (const k of keys) assert.equal(index.get(k), model.get(k.toString('latin1')));
  assert.equal(index.has(Buffer.from('/registry/pods/ns0/pod-absent')), false);
  assert.equal(index.get(Buffer.from('absent')), -1);
});
