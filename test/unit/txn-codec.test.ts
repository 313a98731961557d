// Restore's hand-written transactions (src/etcd/txn-codec.ts) must be the
// very bytes etcd3's own protobuf encoding makes of the same ops, and any run
// of whole ops must be a transaction of its own (that is how a transaction
// etcd finds too large is split). Writing them to a real etcd is covered by
// the restore tests; a split, by faults.test.ts (--max-request-bytes).
import { strict as assert } from 'node:assert';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { loadSync, type Type } from 'protobufjs';
import { countPuts, opKey, TxnEncoder } from '../../src/etcd/txn-codec';

const rpc = loadSync(join(dirname(require.resolve('etcd3')), '..', 'proto', 'rpc.proto'));
const TxnRequest: Type = rpc.lookupType('etcdserverpb.TxnRequest');

type Op = { put: true; key: Buffer; value: Buffer; lease: string } | { put: false; key: Buffer };

const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
const lease = fc.oneof(
  fc.constant('0'),
  fc.bigInt({ min: 1n, max: 2n ** 63n - 1n }).map(String),
  fc.integer({ min: 1, max: 2 ** 31 }).map(String),
);
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ put: fc.constant(true as const), key: bytes(300), value: fc.oneof(bytes(200), bytes(20_000)), lease }),
  fc.record({ put: fc.constant(false as const), key: bytes(300) }),
);

function reference(ops: Op[]): Buffer {
  const success = ops.map((o) => (o.put ? { requestPut: { key: o.key, value: o.value, ...(o.lease !== '0' && { lease: o.lease }) } } : { requestDeleteRange: { key: o.key } }));
  return Buffer.from(TxnRequest.encode(TxnRequest.fromObject({ success })).finish());
}

function encode(ops: Op[]): TxnEncoder {
  const size = ops.reduce((n, o) => n + (o.put ? TxnEncoder.putSize(o.key, o.value, o.lease) : TxnEncoder.deleteSize(o.key)), 0);
  const e = new TxnEncoder(Buffer.alloc(size));
  for (const o of ops) {
    if (o.put) e.put(o.key, o.value, o.lease);
    else e.delete(o.key);
  }
  assert.equal(e.length, size, 'putSize and deleteSize are exact');
  return e;
}

describe('hand-encoded transactions', () => {
  test('match protobufjs byte for byte, with leases above 2^53 and empty keys and values', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 40 }), (ops) => {
        const e = encode(ops);
        assert.deepEqual(e.bytes, reference(ops));
        assert.equal(e.ops, ops.length);
        assert.equal(countPuts(e.bytes, e.starts), ops.filter((o) => o.put).length);
        ops.forEach((o, i) => assert.deepEqual(opKey(e.bytes, e.starts[i]!), o.key));
      }),
    );
  });

  test('any run of whole ops is a transaction of those ops', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 2, maxLength: 20 }), fc.nat(), fc.nat(), (ops, a, b) => {
        const e = encode(ops);
        const [from, to] = [a % ops.length, b % ops.length].sort((x, y) => x - y) as [number, number];
        const end = to + 1 < ops.length ? e.starts[to + 1]! : e.length;
        assert.deepEqual(e.bytes.subarray(e.starts[from]!, end), reference(ops.slice(from, to + 1)));
      }),
    );
  });
});
