// Snapshot mode's hand-coded messages (src/etcd/maintenance-codec.ts) against
// protobufjs's encoding of etcd3's own rpc.proto: the request must be the very
// bytes, and every reply must read back the fields it carries, whatever else
// etcd puts around them. Against a real etcd: test/snapshot-backup.test.ts.
import { strict as assert } from 'node:assert';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { loadSync, type Type } from 'protobufjs';
import { decodeAuthenticateToken, decodeSnapshotResponse, decodeStatusResponse, encodeAuthenticateRequest } from '../../src/etcd/maintenance-codec';

const rpc = loadSync(join(dirname(require.resolve('etcd3')), '..', 'proto', 'rpc.proto'));
const type = (name: string): Type => rpc.lookupType(`etcdserverpb.${name}`);
const encode = (name: string, value: object) => Buffer.from(type(name).encode(type(name).fromObject(value)).finish());

const uint64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const header = fc.record({ clusterId: uint64, memberId: uint64, revision: fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }), raftTerm: uint64 });
const asStrings = (h: { clusterId: bigint; memberId: bigint; revision: bigint; raftTerm: bigint }) => ({
  clusterId: h.clusterId.toString(),
  memberId: h.memberId.toString(),
  revision: h.revision.toString(),
  raftTerm: h.raftTerm.toString(),
});

describe('maintenance messages by hand', () => {
  test('AuthenticateRequest is byte for byte what protobufjs writes, for any name and password', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.string({ unit: 'grapheme' }), (name, password) => {
        assert.deepEqual(encodeAuthenticateRequest(name, password), encode('AuthenticateRequest', { name, password }));
      }),
    );
  });

  test('AuthenticateResponse gives its token, with or without a header', () => {
    fc.assert(
      fc.property(fc.option(header, { nil: undefined }), fc.string({ minLength: 1 }), (h, token) => {
        const msg = encode('AuthenticateResponse', { ...(h && { header: asStrings(h) }), token });
        assert.equal(decodeAuthenticateToken(msg), token);
      }),
    );
  });

  test('StatusResponse gives the cluster, the member, the leader (ids above 2^53 too) and the errors, past every other field', () => {
    fc.assert(
      fc.property(header, uint64, fc.array(fc.string(), { maxLength: 3 }), fc.boolean(), (h, leader, errors, isLearner) => {
        const msg = encode('StatusResponse', {
          header: asStrings(h),
          version: '3.4.23',
          dbSize: '159383552',
          leader: leader.toString(),
          raftIndex: '802',
          raftTerm: '2',
          raftAppliedIndex: '802',
          errors,
          dbSizeInUse: '159000000',
          isLearner,
        });
        assert.deepEqual(decodeStatusResponse(msg), { clusterId: h.clusterId.toString(16), memberId: h.memberId.toString(16), leaderId: leader.toString(16), errors });
      }),
    );
  });

  test('SnapshotResponse gives its blob as a view of the message, and the header revision when there is one', () => {
    fc.assert(
      fc.property(fc.option(header, { nil: undefined }), fc.uint8Array({ maxLength: 40_000 }), uint64, (h, blob, remaining) => {
        const msg = encode('SnapshotResponse', { ...(h && { header: asStrings(h) }), remainingBytes: remaining.toString(), blob });
        const got = decodeSnapshotResponse(msg);
        assert.deepEqual(got.blob, Buffer.from(blob));
        if (blob.length) assert.equal(got.blob.buffer, msg.buffer, 'a view, not a copy');
        // etcd 3.4 sends no header (revision 0): unknown, not 0.
        assert.equal(got.revision, h && h.revision !== 0n ? h.revision.toString() : null);
      }),
    );
  });
});
