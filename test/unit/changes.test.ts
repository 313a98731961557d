// The change log's pure parts: the segment codec, names, the chain, windows and the fold.
import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import type { BackupEntry } from '../../src/catalogue/catalogue';
import { type Manifest } from '../../src/catalogue/manifest';
import { archiveKey } from '../../src/catalogue/naming';
import { chainFrom, changeCatalogue, pathTo, recoveryWindows, staleChanges } from '../../src/changes/chain';
import { ChangeFold } from '../../src/changes/fold';
import { gapKey, parseSegmentKey, segmentKey } from '../../src/changes/naming';
import { decodeSegment } from '../../src/changes/segment-decode';
import { SegmentBuilder } from '../../src/changes/segment-encode';
import type { ChangeEvent } from '../../src/changes/segment-format';
import { ArchiveError, NotFoundError } from '../../src/errors';

const HEADER = { tool: 'etcd-shield test', clusterId: 'cdf818194e3a8c32', prefix: '/app/', createdAt: '2026-12-02T03:00:00.000Z' };

function put(key: string, value: string, rev: number, lease = '0'): ChangeEvent {
  return { op: 'put', key: Buffer.from(key), value: Buffer.from(value), createRevision: String(rev), modRevision: String(rev), version: '1', lease };
}
function del(key: string, rev: number): ChangeEvent {
  return { op: 'delete', key: Buffer.from(key), value: Buffer.alloc(0), createRevision: '0', modRevision: String(rev), version: '0', lease: '0' };
}

function sample(): Buffer {
  const b = new SegmentBuilder(11);
  b.event(put('/app/a', '1', 11));
  b.clock(11, 1000);
  b.event(put('/app/b', 'x', 12, '7587869930066745100'));
  b.event(del('/app/a', 12));
  b.clock(14, 2000);
  return b.seal(HEADER, [{ id: '7587869930066745100', grantedTtl: '60' }], 14);
}

describe('segment codec', () => {
  test('round trip: events, clocks, leases, range', () => {
    const s = decodeSegment(sample(), 'seg');
    assert.equal(s.first, 11);
    assert.equal(s.last, 14);
    assert.deepEqual(s.events.map((e) => [e.op, e.key.toString(), e.value.toString(), e.modRevision, e.lease]), [
      ['put', '/app/a', '1', '11', '0'],
      ['put', '/app/b', 'x', '12', '7587869930066745100'],
      ['delete', '/app/a', '', '12', '0'],
    ]);
    assert.deepEqual(s.clocks, [{ revision: 11, at: 1000 }, { revision: 14, at: 2000 }]);
    assert.deepEqual(s.leases, [{ id: '7587869930066745100', grantedTtl: '60' }]);
    assert.equal(s.header.prefix, '/app/');
  });

  test('an empty segment records progress only', () => {
    const b = new SegmentBuilder(5);
    b.clock(9, 500);
    const s = decodeSegment(b.seal(HEADER, [], 9), 'seg');
    assert.equal(s.events.length, 0);
    assert.equal(s.last, 9);
  });

  test('every truncation and every flipped byte is an ArchiveError', () => {
    const good = sample();
    for (let n = 0; n < good.length; n++) {
      assert.throws(() => decodeSegment(good.subarray(0, n), 'seg'), ArchiveError, `cut at ${n}`);
    }
    for (let i = 0; i < good.length; i++) {
      const bad = Buffer.from(good);
      bad[i] ^= 0x01;
      assert.throws(() => decodeSegment(bad, 'seg'), ArchiveError, `flip at ${i}`);
    }
    assert.throws(() => decodeSegment(Buffer.concat([good, Buffer.from([0])]), 'seg'), /unexpected bytes after the trailer/);
  });
});

describe('names', () => {
  test('segment and gap keys round trip and sort apart from backups', () => {
    const t = new Date('2026-12-02T14:31:58.123Z');
    const key = segmentKey(101, 250, t, { compression: 'zstd', encrypted: true });
    assert.equal(key, 'changes-r101-r250-2026-12-02T14-31-58.123Z.seg.zst.age');
    assert.deepEqual(parseSegmentKey(key), { first: 101, last: 250, lastTime: t, form: { compression: 'zstd', encrypted: true } });
    assert.equal(parseSegmentKey('changes-r1-r2-2026-12-02T14-31-58.123Z.seg.part'), undefined);
    assert.match(gapKey(7, t), /^changes-gap-r7-2026-12-02T14-31-58\.123Z\.json$/);
  });
});

function backup(rev: number, at: string): BackupEntry {
  const name = `${at.slice(0, 19).replace(/:/g, '-')}Z-r${rev}-abcd`;
  const manifest = { name, revision: String(rev), takenAt: at, prefix: '/app/', clusterId: 'c', archive: archiveKey(name, '.zst') } as unknown as Manifest;
  return { name, manifest, takenAt: new Date(at), manifestKey: `${name}.manifest.json`, archive: { key: manifest.archive, size: 1, modified: new Date(at) } };
}

function segs(...spans: [number, number, string][]) {
  return changeCatalogue(spans.map(([a, b, t]) => ({ key: segmentKey(a, b, new Date(t), { compression: 'none', encrypted: false }), size: 10, modified: new Date(t) }))).segments;
}

describe('chain and windows', () => {
  const b1 = backup(100, '2026-12-02T10:00:00.000Z');
  const b2 = backup(300, '2026-12-02T12:00:00.000Z');
  const segments = segs([101, 150, '2026-12-02T10:00:05.000Z'], [151, 200, '2026-12-02T10:00:10.000Z'], [181, 220, '2026-12-02T10:00:12.000Z'], [301, 310, '2026-12-02T12:00:05.000Z']);

  test('the chain takes the furthest-reaching segment at each step and stops at a gap', () => {
    assert.deepEqual(chainFrom(segments, 100).map((s) => [s.first, s.last]), [[101, 150], [151, 200], [181, 220]]);
    assert.deepEqual(chainFrom(segments, 160).map((s) => [s.first, s.last]), [[151, 200], [181, 220]]);
    assert.deepEqual(chainFrom(segments, 220), []);
  });

  test('windows start at backups and run through contiguous segments', () => {
    const w = recoveryWindows([b1, b2], segments);
    assert.deepEqual(w.map((x) => [x.fromRevision, x.toRevision, x.toTime.toISOString()]), [
      [100, 220, '2026-12-02T10:00:12.000Z'],
      [300, 310, '2026-12-02T12:00:05.000Z'],
    ]);
  });

  test('a path to a revision or time; refusals name the windows', () => {
    assert.deepEqual(pathTo([b1, b2], segments, { revision: 170 }, 's').segments.map((s) => s.first), [101, 151]);
    assert.equal(pathTo([b1, b2], segments, { revision: 300 }, 's').backup, b2);
    assert.deepEqual(pathTo([b1, b2], segments, { time: new Date('2026-12-02T10:00:07Z') }, 's').segments.map((s) => s.first), [101, 151]);
    assert.throws(() => pathTo([b1, b2], segments, { revision: 250 }, 's'), (e: Error) => e instanceof NotFoundError && /in a gap/.test(e.message) && /r100 .* to r220/.test(e.message));
    assert.throws(() => pathTo([b1, b2], segments, { revision: 311 }, 's'), /past the last recorded change/);
    assert.throws(() => pathTo([b1, b2], segments, { revision: 50 }, 's'), /before the oldest backup/);
    assert.throws(() => pathTo([b1, b2], segments, { time: new Date('2026-12-02T13:00:00Z') }, 's'), /past the last recorded/);
  });
});

describe('retention of the change log', () => {
  test('segments ending at or before the oldest kept backup go, with their gap markers; the rest stays', () => {
    const objects = [
      ...[[101, 150], [151, 200], [301, 310]].map(([a, b]) => ({ key: segmentKey(a!, b!, new Date('2026-12-02T10:00:00Z'), { compression: 'none', encrypted: false }), size: 1, modified: new Date() })),
      { key: gapKey(201, new Date('2026-12-02T11:00:00Z')), size: 1, modified: new Date() },
    ];
    const cat = changeCatalogue(objects);
    assert.deepEqual(staleChanges(cat, [300]).map((o) => o.key.slice(0, 18)), ['changes-r101-r150-', 'changes-r151-r200-', 'changes-gap-r201-2']);
    assert.deepEqual(staleChanges(cat, [100, 300]), []);
    assert.deepEqual(staleChanges(cat, []), []);
  });
});

describe('fold', () => {
  test('one final state per key, within the range and prefix', () => {
    const f = new ChangeFold(Buffer.from('/app/'));
    const s = decodeSegment(sample(), 'seg');
    f.apply(s, 10, 12);
    assert.equal(f.events, 3);
    assert.deepEqual(f.sorted().map((c) => [c.record.key.toString(), c.put, c.record.value.toString()]), [
      ['/app/a', false, ''],
      ['/app/b', true, 'x'],
    ]);
    const g = new ChangeFold(Buffer.from('/app/'));
    g.apply(s, 10, 11);
    assert.deepEqual(g.sorted().map((c) => [c.record.key.toString(), c.put]), [['/app/a', true]]);
    assert.equal(g.leases.get('7587869930066745100'), '60');
  });
});
