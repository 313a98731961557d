// The sentence an etcd failure becomes names what was being done, and to what.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { resolveConfig } from '../../src/config/config';
import { explainEtcdError } from '../../src/etcd/explain';

const { config } = resolveConfig({ url: 'http://127.0.0.1:1' });
const refused = () => Object.assign(new Error('14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1'), { code: 14 });

test('a refused connection says what was being done: to the keys, to a member, or nothing more', () => {
  const cases: [Parameters<typeof explainEtcdError>[1], RegExp][] = [
    [{ config, action: 'read' }, /while trying to read the whole keyspace \(/],
    [{ config, action: 'write', prefix: '/app/' }, /while trying to write keys under prefix "\/app\/" \(/],
    [{ config, action: 'read the status of', object: 'the member' }, /while trying to read the status of the member \(/],
    [{ config, action: 'connect', object: '' }, /while trying to connect \(/],
  ];
  for (const [ctx, expected] of cases) {
    const err = explainEtcdError(refused(), ctx);
    assert.match(err.message, /^cannot reach etcd at http:\/\/127\.0\.0\.1:1 /, err.message);
    assert.match(err.message, expected, err.message);
    // No phrase ends in a dangling preposition before the detail.
    assert.doesNotMatch(err.message, /\b(of|to|from|for) \(/, err.message);
  }
});
