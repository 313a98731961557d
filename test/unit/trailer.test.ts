// The sha256 check of a snapshot as it streams (src/snapshot/trailer.ts):
// however the stream is cut into chunks, down to empty ones and single bytes,
// it hashes everything but the last 32 bytes and compares them with that hash.
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import { TrailerCheck } from '../../src/snapshot/trailer';

const withTrailer = (db: Buffer) => Buffer.concat([db, createHash('sha256').update(db).digest()]);

/** The stream cut at the given points (sorted, repeats make empty chunks). */
function chunks(stream: Buffer, cuts: number[]): Buffer[] {
  const at = [0, ...cuts.map((c) => c % (stream.length + 1)).sort((a, b) => a - b), stream.length];
  return at.slice(1).map((end, i) => stream.subarray(at[i], end));
}

function check(parts: Buffer[]): ReturnType<TrailerCheck['finish']> {
  const t = new TrailerCheck();
  for (const p of parts) t.update(p);
  assert.equal(t.bytes, parts.reduce((n, p) => n + p.length, 0));
  return t.finish();
}

test('a stream that ends with the sha256 of what came before passes, however it is chunked', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 3000 }), fc.array(fc.nat(), { maxLength: 40 }), (db, cuts) => {
      const stream = withTrailer(Buffer.from(db));
      assert.deepEqual(check(chunks(stream, cuts)), { ok: true, sha256: createHash('sha256').update(db).digest('hex') });
    }),
  );
});

test('one byte changed anywhere, or the stream cut short, fails', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 3000 }), fc.array(fc.nat(), { maxLength: 20 }), fc.nat(), fc.boolean(), (db, cuts, where, cut) => {
      const stream = withTrailer(Buffer.from(db));
      const bad = cut ? stream.subarray(0, where % stream.length) : Buffer.from(stream);
      if (!cut) bad[where % bad.length]! ^= 0x5a;
      const verdict = check(chunks(bad, cuts));
      assert.equal(verdict.ok, false);
    }),
  );
});

test('nothing but a trailer is no database', () => {
  const verdict = check([createHash('sha256').update('').digest()]);
  assert.deepEqual(verdict, { ok: false, problem: 'it ended after 32 bytes, before any database' });
});
