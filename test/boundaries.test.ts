// Guessed page ends (src/etcd/boundaries.ts) are only ever a matter of speed:
// whatever the keys seen, a guess must fall strictly inside its span, or be
// no guess at all. Reading with them against real etcd is in mechanisms.test.ts.
import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { after, KeyDensity, type Keys } from '../src/etcd/boundaries';
import { distinctSorted } from './etcd-data';

const key = fc.uint8Array({ minLength: 0, maxLength: 20 }).map((a) => Buffer.from(a));
const OPEN = Buffer.from([0]);
const keysOf = (list: Buffer[]): Keys => ({ length: list.length, key: (i) => list[i]! });

describe('guessed page ends', () => {
  test('a guess is always strictly between the start and the end of its span', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.array(key, { maxLength: 30 }), fc.boolean()), { minLength: 1, maxLength: 6 }),
        key,
        key,
        fc.integer({ min: 1, max: 5000 }),
        fc.option(fc.integer({ min: 0, max: 1_000_000 }), { nil: undefined }),
        (replies, a, b, want, keys) => {
          const density = new KeyDensity();
          for (const [list, full] of replies) {
            const page = distinctSorted(list);
            const start = page[0] ?? a;
            density.observe(start, after(page[page.length - 1] ?? start), keysOf(page), full && page.length > 0);
          }
          const [start, end] = Buffer.compare(a, b) <= 0 ? [a, b] : [b, a];
          for (const spanEnd of [end, OPEN]) {
            const guess = density.guessEnd(start, spanEnd, want, keys);
            if (!guess) continue;
            assert.ok(Buffer.compare(guess, start) > 0, `guess ${guess.toString('hex')} is not above start ${start.toString('hex')}`);
            // A range end of the one byte 0 is etcd's "to the end of the keyspace", whoever made it.
            if (!spanEnd.equals(OPEN)) assert.ok(Buffer.compare(guess, spanEnd) < 0, `guess ${guess.toString('hex')} is not below end ${spanEnd.toString('hex')}`);
          }
        },
      ),
      // Found by a CI run: a span ending at the byte 0, which etcd reads as open.
      { numRuns: 2000, examples: [[[[[Buffer.from([]), Buffer.from([123, 0])], false]], Buffer.from([0]), Buffer.from([]), 1, undefined]] },
    );
  });

  test('keys that count in decimal are followed across a carry', () => {
    const density = new KeyDensity();
    const page = Array.from({ length: 100 }, (_, i) => Buffer.from(`/app/item-${String(900 + i).padStart(6, '0')}`));
    density.observe(page[0]!, OPEN, keysOf(page), true);
    // 100 keys per 100 numbers: a page of 100 more ends near item-001099, past the carry into the thousands.
    const guess = density.guessEnd(after(page[99]!), OPEN, 100)!.toString();
    assert.ok(guess > '/app/item-001090' && guess < '/app/item-001110', `guess ${guess}`);
  });

  test('a span whose count is known is split in proportion, not by the last density', () => {
    const density = new KeyDensity();
    const page = Array.from({ length: 10 }, (_, i) => Buffer.from(`/k/${i}`));
    density.observe(page[0]!, Buffer.from('/k/a'), keysOf(page), false);
    const guess = density.guessEnd(Buffer.from('/k/a0'), Buffer.from('/k/z0'), 50, 100);
    assert.ok(guess && guess.toString() > '/k/a0' && guess.toString() < '/k/z0', `guess ${guess?.toString()}`);
  });
});
