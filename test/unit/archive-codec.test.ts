// In-process unit tests of src/archive: the native codec, the legacy decoder and verifyArchive.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { ArchiveError } from '../../src/errors';
import { encodeLegacyLine, LegacyDecoder } from '../../src/archive/legacy';
import { NativeDecoder } from '../../src/archive/native-decode';
import { NativeEncoder, nextSlice, recordsSize } from '../../src/archive/native-encode';
import { rangeReplyOf } from '../range-reply';
import { MAGIC } from '../../src/archive/native-format';
import type { ArchiveDecoder, ArchiveHeader, ArchiveItem, KeyRecord, LeaseRecord } from '../../src/archive/types';
import { verifyArchive, VerifyingStage } from '../../src/archive/verify';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

const HEADER: Omit<ArchiveHeader, 'format'> = {
  tool: 'etcd-shield test',
  revision: '4242',
  prefix: '',
  clusterId: '14841639068965178418',
  memberId: '10276657743932975437',
  createdAt: '2024-01-02T03:04:05.000Z',
};

function rec(key: Buffer | string, value: Buffer | string, lease = '0', rev = 7): KeyRecord {
  return {
    key: Buffer.from(key as string),
    value: Buffer.from(value as string),
    createRevision: String(rev),
    modRevision: String(rev + 3),
    version: '2',
    lease,
  };
}

const RECORDS: KeyRecord[] = [
  rec(Buffer.from([0x00]), 'zero key'),
  rec('/a', ''),
  rec('/a/b', Buffer.from([0xff, 0x00, 0x0a, 0x54]), '1234567890123'),
  rec(Buffer.from([0xc3, 0x28]), 'not utf-8 key', '0', 99),
  rec(Buffer.from([0xff, 0xff]), 'line\nbreak'),
];
const LEASES: LeaseRecord[] = [{ id: '1234567890123', grantedTtl: '600', remainingTtl: '577' }];

function encode(records: readonly KeyRecord[], leases: readonly LeaseRecord[] = [], header = HEADER, split = false): Buffer {
  const enc = new NativeEncoder();
  const parts = [enc.start(header)];
  if (split) for (const r of records) parts.push(enc.records(rangeReplyOf([r])));
  else parts.push(enc.records(rangeReplyOf(records)));
  for (const l of leases) parts.push(enc.lease(l));
  parts.push(enc.finish());
  return Buffer.concat(parts);
}

/** Items in a comparable shape (Buffers as hex; subarrays and copies compare alike). */
function normalize(items: ArchiveItem[]): unknown[] {
  return items.map((i) =>
    i.kind === 'record' ? { kind: 'record', ...i.record, key: i.record.key.toString('hex'), value: i.record.value.toString('hex') } : { ...i },
  );
}

function decodeWith(decoder: ArchiveDecoder, data: Buffer, chunks: number[] = [data.length]): unknown[] {
  const items: ArchiveItem[] = [];
  let at = 0;
  for (const size of chunks) {
    items.push(...decoder.push(data.subarray(at, at + size)));
    at += size;
  }
  if (at < data.length) items.push(...decoder.push(data.subarray(at)));
  items.push(...decoder.end());
  return normalize(items);
}

const decodeNative = (data: Buffer, chunks?: number[]) => decodeWith(new NativeDecoder(), data, chunks);
const decodeLegacy = (data: Buffer | string, chunks?: number[]) => decodeWith(new LegacyDecoder(), Buffer.from(data as string), chunks);
const isArchiveError = (e: unknown) => e instanceof ArchiveError;

let tmp: string;
let fileSeq = 0;
function tempFile(data: Buffer | string): string {
  const p = path.join(tmp, `a${++fileSeq}`);
  fs.writeFileSync(p, data);
  return p;
}

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-shield-codec-'));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('native format', () => {
  const archive = encode(RECORDS, LEASES);
  const expected = decodeNative(archive);

  test('a page encoded in slices is the same bytes as in one piece; each slice holds a record and fits when it can', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 12 }), fc.nat({ max: 3000 })), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 8000 }),
        (entries, maxBytes) => {
          const byHex = new Map(entries.map(([k, n]) => [Buffer.from(k).toString('hex'), rec(Buffer.from(k), Buffer.alloc(n, 7))]));
          const table = rangeReplyOf([...byHex.values()].sort((a, b) => Buffer.compare(a.key, b.key)));
          const whole = new NativeEncoder().records(table);
          const enc = new NativeEncoder();
          const parts: Buffer[] = [];
          for (let from = 0; from < table.length; ) {
            const { to, bytes: size } = nextSlice(table, from, maxBytes);
            assert.ok(to > from, 'a slice without a record');
            assert.equal(size, recordsSize(table, from, to), 'the slice names the wrong size');
            assert.ok(to === from + 1 || size <= maxBytes, `slice of ${size} bytes over ${maxBytes}`);
            parts.push(Buffer.from(enc.records(table, undefined, from, to)));
            from = to;
          }
          assert.deepEqual(Buffer.concat(parts), whole);
        },
      ),
      { numRuns: 200 },
    );
  });

  test('round trip: header, records, leases and trailer come back as written', () => {
    assert.equal(archive.subarray(0, MAGIC.length).toString('latin1'), '#etcd-shield-archive v1\n');
    const items = expected as { kind: string }[];
    assert.deepEqual(items.map((i) => i.kind), ['header', 'record', 'record', 'record', 'record', 'record', 'lease', 'trailer']);
    assert.deepEqual(items[0], { kind: 'header', header: { format: 1, ...HEADER } });
    assert.deepEqual(
      items.slice(1, 6),
      normalize(RECORDS.map((record) => ({ kind: 'record' as const, record }))),
    );
    assert.deepEqual(items[6], { kind: 'lease', lease: LEASES[0] });
    const trailer = (items[7] as unknown as { trailer: { records: number; leases: number; sha256: string } }).trailer;
    assert.equal(trailer.records, 5);
    assert.equal(trailer.leases, 1);
    assert.match(trailer.sha256, /^[0-9a-f]{64}$/);
    // One records() call per record writes the same bytes as one call for all.
    assert.ok(encode(RECORDS, LEASES, HEADER, true).equals(archive));
    // int64 extremes survive.
    const extreme = rec('/x', 'y', '9223372036854775807', 1);
    extreme.modRevision = '9223372036854775807';
    extreme.version = '-1';
    const back = decodeNative(encode([extreme])) as { kind: string; lease?: string }[];
    assert.deepEqual(back[1], normalize([{ kind: 'record', record: extreme }])[0]);
  });

  test('round trip is independent of how the bytes are chunked', () => {
    const ones = Array.from({ length: archive.length }, () => 1);
    assert.deepEqual(decodeNative(archive, ones), expected);
    for (const size of [2, 3, 5, 7, 24, 25, 64, 100]) {
      assert.deepEqual(decodeNative(archive, Array.from({ length: Math.ceil(archive.length / size) }, () => size)), expected, `chunks of ${size}`);
    }
  });

  test('property: any sorted set of keys, values, revisions and leases round-trips under any chunking', () => {
    const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String);
    const arb = fc.record({
      entries: fc.uniqueArray(
        fc.record({
          key: fc.uint8Array({ minLength: 1, maxLength: 40 }),
          value: fc.uint8Array({ maxLength: 300 }),
          create: int64,
          mod: int64,
          version: int64,
          lease: fc.option(fc.bigInt({ min: 1n, max: 2n ** 63n - 1n }).map(String), { nil: '0' }),
        }),
        { selector: (e) => Buffer.from(e.key).toString('hex'), maxLength: 30 },
      ),
      prefix: fc.string({ maxLength: 10 }),
      cuts: fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 40 }),
    });
    fc.assert(
      fc.property(arb, ({ entries, prefix, cuts }) => {
        const records: KeyRecord[] = entries
          .map((e) => ({
            // Every key of an archive lies under its header's prefix.
            key: Buffer.concat([Buffer.from(prefix), e.key]),
            value: Buffer.from(e.value),
            createRevision: e.create,
            modRevision: e.mod,
            version: e.version,
            lease: e.lease,
          }))
          .sort((a, b) => Buffer.compare(a.key, b.key));
        const leaseIds = [...new Set(records.map((r) => r.lease).filter((l) => l !== '0'))];
        const leases = leaseIds.map((id, i) => ({ id, grantedTtl: String(60 + i), remainingTtl: String(i - 1) }));
        const data = encode(records, leases, { ...HEADER, prefix });
        const items = decodeNative(data, cuts) as { kind: string }[];
        assert.deepEqual(items.filter((i) => i.kind === 'record'), normalize(records.map((record) => ({ kind: 'record' as const, record }))));
        assert.deepEqual(items.filter((i) => i.kind === 'lease'), leases.map((lease) => ({ kind: 'lease', lease })));
        assert.deepEqual(items[0], { kind: 'header', header: { format: 1, ...HEADER, prefix } });
      }),
      { numRuns: 150 },
    );
  });

  test('truncation at every byte offset is rejected; only the full length decodes', async () => {
    for (let n = 0; n < archive.length; n++) {
      assert.throws(() => decodeNative(archive.subarray(0, n)), isArchiveError, `truncated to ${n} of ${archive.length} bytes was accepted`);
    }
    assert.deepEqual(decodeNative(archive), expected);
    // verifyArchive on files, same offsets.
    for (let n = 0; n < archive.length; n++) {
      await assert.rejects(verifyArchive(tempFile(archive.subarray(0, n))), isArchiveError, `verifyArchive accepted ${n} of ${archive.length} bytes`);
    }
    const ok = await verifyArchive(tempFile(archive));
    assert.equal(ok.format, 'etcd-shield');
    assert.equal(ok.records, 5);
    assert.equal(ok.bytes, archive.length);
  });

  test('every single-byte alteration is rejected or decodes identically', () => {
    const masks = [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff];
    let rejected = 0;
    let identical = 0;
    for (let at = 0; at < archive.length; at++) {
      for (const mask of masks) {
        const copy = Buffer.from(archive);
        copy[at]! ^= mask;
        let items: unknown[] | undefined;
        try {
          items = decodeNative(copy);
        } catch (err) {
          assert.ok(err instanceof ArchiveError, `byte ${at} ^ 0x${mask.toString(16)}: threw ${String(err)} instead of an ArchiveError`);
          rejected++;
          continue;
        }
        assert.deepEqual(items, expected, `byte ${at} ^ 0x${mask.toString(16)} decoded to something else without an error`);
        identical++;
      }
    }
    assert.equal(rejected + identical, archive.length * masks.length);
    assert.ok(rejected > 0);
  });

  test('records out of order, or repeated, are rejected', () => {
    const a = rec('/a', '1');
    const b = rec('/b', '2');
    assert.throws(() => decodeNative(encode([b, a])), (e: unknown) => isArchiveError(e) && /order|repeated/.test((e as Error).message));
    assert.throws(() => decodeNative(encode([a, a])), isArchiveError);
    assert.throws(() => decodeNative(encode([a, b, rec('/a/z', '3')], [], HEADER, true)), isArchiveError);
    // A key that is a prefix of the previous one sorts before it.
    assert.throws(() => decodeNative(encode([rec('/ab', ''), rec('/a', '')])), isArchiveError);
    assert.equal((decodeNative(encode([rec('/a', ''), rec('/ab', '')])) as unknown[]).length, 4);
  });

  test('a record after a lease, or a frame before the header, is rejected', () => {
    const enc = new NativeEncoder();
    const bad = Buffer.concat([enc.start(HEADER), enc.records(rangeReplyOf([rec('/a', '1')])), enc.lease(LEASES[0]!), enc.records(rangeReplyOf([rec('/b', '2')])), enc.finish()]);
    assert.throws(() => decodeNative(bad), isArchiveError);
    const headerFrameEnd = MAGIC.length + 5 + archive.readUInt32BE(MAGIC.length + 1);
    const noHeader = Buffer.concat([archive.subarray(0, MAGIC.length), archive.subarray(headerFrameEnd)]);
    assert.throws(() => decodeNative(noHeader), (e: unknown) => isArchiveError(e) && /header/.test((e as Error).message));
  });

  test('trailing bytes after the trailer are rejected', () => {
    for (const extra of [Buffer.from([0]), Buffer.from('\n'), Buffer.from(' '), archive, archive.subarray(archive.length - 40)]) {
      assert.throws(() => decodeNative(Buffer.concat([archive, extra])), isArchiveError, `${extra.length} trailing bytes accepted`);
    }
  });

  test('a trailer whose counts disagree is rejected, even with the right checksum', () => {
    const body = archive.subarray(0, archive.lastIndexOf(Buffer.from('T')));
    const trailer = JSON.parse(archive.subarray(body.length + 5).toString('utf8')) as { records: number; leases: number; sha256: string };
    for (const wrong of [{ ...trailer, records: trailer.records + 1 }, { ...trailer, leases: 0 }, { ...trailer, sha256: '0'.repeat(64) }]) {
      const json = Buffer.from(JSON.stringify(wrong));
      const head = Buffer.alloc(5);
      head[0] = 0x54;
      head.writeUInt32BE(json.length, 1);
      assert.throws(() => decodeNative(Buffer.concat([body, head, json])), isArchiveError);
    }
    // Rebuilt with the original values, it decodes: the test itself is sound.
    const json = Buffer.from(JSON.stringify(trailer));
    const head = Buffer.alloc(5);
    head[0] = 0x54;
    head.writeUInt32BE(json.length, 1);
    assert.deepEqual(decodeNative(Buffer.concat([body, head, json])), expected);
  });

  test('a newer format version, a foreign first line and an absurd frame length are refused with a reason', () => {
    const v2 = Buffer.concat([Buffer.from('#etcd-shield-archive v2\n'), archive.subarray(MAGIC.length)]);
    assert.throws(() => decodeNative(v2), (e: unknown) => isArchiveError(e) && /version 2/.test((e as Error).message) && /upgrade/.test((e as Error).message));
    assert.throws(() => decodeNative(Buffer.from('#!/bin/sh\necho hi\n')), isArchiveError);
    const huge = Buffer.from(archive);
    huge.writeUInt32BE(0xfffffff0, MAGIC.length + 1);
    assert.throws(() => decodeNative(huge), (e: unknown) => isArchiveError(e) && /claims/.test((e as Error).message));
  });

  test('verifyArchive: counts in scope, lease completeness, empty files', async () => {
    const s = await verifyArchive(tempFile(archive), '/a');
    assert.equal(s.records, 5);
    assert.equal(s.inScope, 2);
    assert.deepEqual([...s.usedLeases], ['1234567890123']);
    assert.equal(s.leases.length, 1);
    assert.deepEqual(s.header, { format: 1, ...HEADER });
    // A record that points at a lease the archive does not list.
    await assert.rejects(verifyArchive(tempFile(encode([rec('/a', '1', '77')]))), (e: unknown) => isArchiveError(e) && /77/.test((e as Error).message));
    await assert.rejects(verifyArchive(tempFile('')), (e: unknown) => isArchiveError(e) && /empty/.test((e as Error).message));
  });
  test('VerifyingStage says what verifyArchive says, in any write sizes, and passes the bytes unchanged', async () => {
    const through = async (data: Buffer, scope: string, size: number) => {
      const stage = new VerifyingStage(scope);
      const parts: Buffer[] = [];
      for (let i = 0; i < data.length; i += size) parts.push(data.subarray(i, i + size));
      const out: Buffer[] = [];
      await pipeline(Readable.from(parts, { objectMode: false }), stage, new Writable({ write: (c: Buffer, _e, cb) => (out.push(c), cb()) }));
      assert.ok(Buffer.concat(out).equals(data), 'bytes pass unchanged, even when damaged');
      return () => stage.summary();
    };
    const legacy = Buffer.from(encodeLegacyLine(Buffer.from('/a/x'), Buffer.from('v')) + encodeLegacyLine(Buffer.from('/b'), Buffer.from('w')));
    for (const [data, scope] of [[archive, '/a'], [archive, ''], [legacy, '/a']] as [Buffer, string][]) {
      const expected = await verifyArchive(tempFile(data), scope);
      for (const size of [1, 7, data.length]) assert.deepEqual((await through(data, scope, size))(), expected);
    }
    for (const n of [0, 10, Math.floor(archive.length / 2), archive.length - 1]) {
      const summary = await through(archive.subarray(0, n), '', 5);
      assert.throws(summary, isArchiveError, `VerifyingStage accepted ${n} of ${archive.length} bytes`);
    }
    const lacking = await through(encode([rec('/a', '1', '77')]), '', 9);
    assert.throws(lacking, (e: unknown) => isArchiveError(e) && /lease 77/.test((e as Error).message));
  });
});

describe('legacy format', () => {
  const lines = [
    encodeLegacyLine(Buffer.from('/z'), Buffer.from('last')),
    encodeLegacyLine(Buffer.from([0xc3, 0x28]), Buffer.from([0x00, 0xff])),
    encodeLegacyLine(Buffer.from('/a'), Buffer.alloc(0)),
  ];
  const good = lines.join('');

  test('encodeLegacyLine writes the original plugin line format', () => {
    assert.equal(encodeLegacyLine(Buffer.from('/config/multi'), Buffer.from('line one\nline two : with colon')), 'L2NvbmZpZy9tdWx0aQ== : bGluZSBvbmUKbGluZSB0d28gOiB3aXRoIGNvbG9u\n');
    assert.equal(encodeLegacyLine(Buffer.from('/service/db/empty'), Buffer.alloc(0)), 'L3NlcnZpY2UvZGIvZW1wdHk= : \n');
  });

  test('decodes keys and values exactly, however the input is chunked', () => {
    const items = decodeLegacy(good) as { kind: string; key: string; value: string; lease: string }[];
    assert.deepEqual(
      items.map((i) => [i.kind, Buffer.from(i.key, 'hex').toString('latin1'), i.value, i.lease]),
      [
        ['record', '/z', Buffer.from('last').toString('hex'), '0'],
        ['record', '\xc3(', '00ff', '0'],
        ['record', '/a', '', '0'],
      ],
    );
    assert.deepEqual(decodeLegacy(good, Array.from({ length: good.length }, () => 1)), items);
    assert.deepEqual(decodeLegacy(good, [5, 17, 3]), items);
  });

  test('a line without " : " is an error naming its line number', () => {
    const bad = lines[0] + 'L2E=:YQ==\n' + lines[2];
    assert.throws(() => decodeLegacy(bad), (e: unknown) => isArchiveError(e) && /line 2\b/.test((e as Error).message));
    assert.throws(
      () => decodeLegacy(bad, Array.from({ length: bad.length }, () => 1)),
      (e: unknown) => isArchiveError(e) && /line 2\b/.test((e as Error).message),
    );
    const blank = lines[0] + lines[1] + '\n';
    assert.throws(() => decodeLegacy(blank), (e: unknown) => isArchiveError(e) && /line 3\b/.test((e as Error).message));
  });

  test('a missing final newline is an error (a truncated archive)', () => {
    assert.throws(() => decodeLegacy(good.slice(0, -1)), (e: unknown) => isArchiveError(e) && /line 3\b/.test((e as Error).message));
    assert.throws(() => decodeLegacy(good.slice(0, 10)), isArchiveError);
  });

  test('invalid base64 and an empty key are errors naming the line', () => {
    for (const [bad, line] of [
      [lines[0] + lines[1] + 'L2!= : YQ==\n', 3],
      [lines[0] + 'L2E= : Y Q==\n', 2],
      [' : YQ==\n', 1],
      ['L2E : YQ==\n', 1], // missing padding
    ] as const) {
      assert.throws(() => decodeLegacy(bad), (e: unknown) => isArchiveError(e) && new RegExp(`line ${line}\\b`).test((e as Error).message), bad);
    }
  });

  test('verifyArchive reads legacy files and rejects damaged ones', async () => {
    const s = await verifyArchive(tempFile(good));
    assert.equal(s.format, 'legacy');
    assert.equal(s.records, 3);
    assert.equal(s.header, undefined);
    await assert.rejects(verifyArchive(tempFile(good.slice(0, -1))), isArchiveError);
    await assert.rejects(verifyArchive(tempFile(lines[0] + 'garbage\n')), (e: unknown) => isArchiveError(e) && /line 2\b/.test((e as Error).message));
  });
});
