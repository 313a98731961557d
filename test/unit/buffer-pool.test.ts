import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { BufferPool } from '../../src/io/buffer-pool';

test('a pool reuses what it keeps; a buffer made for something larger than usual is used once, and the usual ones are not lost to it', () => {
  const pool = new BufferPool(2, 1000);
  const usual = pool.take(1000);
  assert.equal(usual.length, 1250);
  pool.give(usual);
  assert.equal(pool.take(900), usual, 'a kept buffer is taken again');
  pool.give(usual);

  // A large value: the usual buffer is too small for it and stays in the pool.
  const large = pool.take(6000);
  assert.ok(large.length >= 6000 && large !== usual);
  pool.give(large);
  assert.equal(pool.take(1000), usual, 'the large buffer took the usual one\'s place');
  assert.notEqual(pool.take(1000), large, 'the large buffer was kept');

  // Without a usual size, anything given back is kept, up to `keep` buffers.
  const any = new BufferPool(1);
  const big = any.take(6000);
  any.give(big);
  any.give(Buffer.alloc(10));
  assert.equal(any.take(5000), big);
});
