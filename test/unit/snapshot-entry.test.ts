// The snapshot reader's in-place mvccpb.KeyValue decoding (src/snapshot/mvcc.ts)
// must read what protobufjs reads from the same bytes, for any field order,
// unknown fields and int64s past 2^53 or below 0, and refuse any cut of a
// message with an ArchiveError instead of reading past its end.
import { strict as assert } from 'node:assert';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { loadSync, Writer } from 'protobufjs';
import { ArchiveError } from '../../src/errors';
import { KeyValueSpan, KvInt, readKeyValue } from '../../src/snapshot/mvcc';

const kvProto = loadSync(join(dirname(require.resolve('etcd3')), '..', 'proto', 'kv.proto')).lookupType('mvccpb.KeyValue');

const int64 = fc.oneof(fc.constant(0n), fc.bigInt({ min: 1n, max: 2n ** 63n - 1n }), fc.bigInt({ min: -(2n ** 63n), max: -1n }), fc.bigInt({ min: 1n, max: 2n ** 40n }));
const entry = fc.record({
  key: fc.uint8Array({ minLength: 1, maxLength: 100 }),
  value: fc.uint8Array({ maxLength: 3000 }),
  createRevision: int64,
  modRevision: int64,
  version: int64,
  lease: int64,
  order: fc.shuffledSubarray([1, 2, 3, 4, 5, 6, 7, 8], { minLength: 8, maxLength: 8 }),
});

type Entry = typeof entry extends fc.Arbitrary<infer T> ? T : never;

/** The message with its fields in `order` (7 and 8: unknown fields of wire types 0 and 2). */
function encode(e: Entry): Buffer {
  const w = Writer.create();
  for (const field of e.order) {
    if (field === 1) w.uint32((1 << 3) | 2).bytes(e.key);
    else if (field === 5) w.uint32((5 << 3) | 2).bytes(e.value);
    else if (field === 7) w.uint32((17 << 3) | 0).uint64(12345);
    else if (field === 8) w.uint32((18 << 3) | 2).bytes(Buffer.from('unknown'));
    else {
      const v = field === 2 ? e.createRevision : field === 3 ? e.modRevision : field === 4 ? e.version : e.lease;
      if (v !== 0n) w.uint32((field << 3) | 0).int64(v.toString());
    }
  }
  return Buffer.from(w.finish());
}

test('readKeyValue reads what protobufjs reads, in place, from a message inside a larger buffer', () => {
  const span = new KeyValueSpan();
  fc.assert(
    fc.property(entry, fc.nat(40), (e, pad) => {
      const msg = encode(e);
      const buf = Buffer.concat([Buffer.alloc(pad, 0xee), msg, Buffer.alloc(7, 0xee)]);
      readKeyValue(buf, pad, pad + msg.length, span, 3, { where: 'the test page' });
      const ref = kvProto.toObject(kvProto.decode(msg), { longs: String, bytes: Buffer }) as Record<string, unknown>;
      assert.deepEqual(span.key(), Buffer.from(e.key));
      assert.deepEqual(span.value(), ref.value ?? Buffer.alloc(0));
      assert.equal(span.decimal(KvInt.CreateRevision), ref.createRevision ?? '0');
      assert.equal(span.decimal(KvInt.ModRevision), ref.modRevision ?? '0');
      assert.equal(span.decimal(KvInt.Version), ref.version ?? '0');
      assert.equal(span.lease(), ref.lease ?? '0');
      assert.ok(span.hasPrefix(Buffer.from(e.key).subarray(0, 1)));
      const small = span.small(KvInt.ModRevision);
      assert.equal(small, e.modRevision >= 0n && e.modRevision < 2n ** 53n ? Number(e.modRevision) : Infinity);
    }),
    { numRuns: 500 },
  );
});

test('every cut of a message is refused as damaged, never read past', () => {
  const span = new KeyValueSpan();
  let refused = 0;
  fc.assert(
    fc.property(entry, (e) => {
      const msg = encode({ ...e, order: [1, 2, 3, 4, 5, 6] });
      // The bytes after the cut are there but must not be read: the message ends at the cut.
      for (const cut of [1, 2, Math.floor(msg.length / 2), msg.length - 1]) {
        if (cut <= 0 || cut >= msg.length) continue;
        let outcome: unknown;
        try {
          readKeyValue(msg, 0, cut, span, 5, { where: 'the cut page' });
          outcome = 'read';
        } catch (err) {
          outcome = err;
        }
        // A cut at a field boundary is a shorter valid message (fields are optional); it must then hold only bytes before the cut.
        if (outcome === 'read') assert.ok(span.keyAt + span.keyLength <= cut && span.valueAt + span.valueLength <= cut);
        else {
          assert.ok(outcome instanceof ArchiveError && /^entry 5 of the cut page:/.test(outcome.message), String(outcome));
          refused++;
        }
      }
    }),
    { numRuns: 300 },
  );
  assert.ok(refused > 300, `only ${refused} cuts were refused`);
});

test('an empty key, a group and an unknown wire type are refused', () => {
  const span = new KeyValueSpan();
  const cases: [string, Buffer][] = [
    ['empty key', Buffer.from([0x0a, 0x00, 0x18, 0x05])],
    ['no key', Buffer.from([0x18, 0x05])],
    ['group', Buffer.from([0x0a, 0x01, 0x61, (9 << 3) | 3])],
    ['wire type 7', Buffer.from([0x0a, 0x01, 0x61, (9 << 3) | 7])],
    ['varint past the end', Buffer.from([0x0a, 0x01, 0x61, 0x18, 0xff])],
  ];
  for (const [name, buf] of cases) {
    assert.throws(() => readKeyValue(buf, 0, buf.length, span, 0, { where: name }), (err: unknown) => err instanceof ArchiveError && err.message.startsWith(`entry 0 of ${name}:`), name);
  }
});
