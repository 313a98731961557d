// The change log's pure parts: the segment codec, names, the chain, windows and the fold.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import type { BackupEntry } from '../../src/catalogue/catalogue';
import { type Manifest } from '../../src/catalogue/manifest';
import { archiveKey } from '../../src/catalogue/naming';
import { chainFrom, changeCatalogue, pathTo, recoveryWindows, staleChanges } from '../../src/changes/chain';
import { ChangeFold } from '../../src/changes/fold';
import { PointSource } from '../../src/changes/point-source';
import { gapKey, parseSegmentKey, segmentKey } from '../../src/changes/naming';
import { decodeSegment, EventView } from '../../src/changes/segment-decode';
import { SEGMENT_BLOCK_BYTES, SegmentBuilder } from '../../src/changes/segment-encode';
import { BufferPool } from '../../src/io/buffer-pool';
import { ordersRequestedProgress } from '../../src/etcd/progress-order';
import type { ChangeEvent } from '../../src/changes/segment-format';
import { ArchiveError, FileError, NotFoundError } from '../../src/errors';
import { NativeEncoder } from '../../src/archive/native-encode';
import type { KeyRecord, LeaseRecord } from '../../src/archive/types';
import type { Put } from '../../src/restore/source';
import { rangeReplyOf } from '../range-reply';

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
  return Buffer.concat(b.seal(HEADER, [{ id: '7587869930066745100', grantedTtl: '60' }], 14));
}

describe('segment codec', () => {
  test('round trip: events, clocks, leases, range', () => {
    const s = decodeSegment(sample(), 'seg');
    assert.equal(s.first, 11);
    assert.equal(s.last, 14);
    const e = new EventView(s.data);
    assert.deepEqual(s.events.map((at) => {
        e.at(at);
        return [e.isPut, e.key().toString(), e.value().toString(), e.modRevision, e.lease()];
      }), [
      [true, '/app/a', '1', 11, '0'],
      [true, '/app/b', 'x', 12, '7587869930066745100'],
      [false, '/app/a', '', 12, '0'],
    ]);
    assert.deepEqual(s.clocks, [{ revision: 11, at: 1000 }, { revision: 14, at: 2000 }]);
    assert.deepEqual(s.leases, [{ id: '7587869930066745100', grantedTtl: '60' }]);
    assert.equal(s.header.prefix, '/app/');
  });

  test('an empty segment records progress only', () => {
    const b = new SegmentBuilder(5);
    b.clock(9, 500);
    const s = decodeSegment(Buffer.concat(b.seal(HEADER, [], 9)), 'seg');
    assert.equal(s.events.length, 0);
    assert.equal(s.last, 9);
  });

  test('frames fill pooled blocks across their edges; released blocks build the next segment', () => {
    const pool = new BufferPool(8);
    const build = (first: number, n: number, fill: string) => {
      const b = new SegmentBuilder(first, pool);
      for (let i = 0; i < n; i++) b.event(put(`/app/k${i}`, fill.repeat(i === 7 ? SEGMENT_BLOCK_BYTES + 10 : 3000), first + i));
      b.clock(first + n - 1, 1000);
      return b;
    };
    const a = build(100, 200, 'a');
    const aParts = a.seal(HEADER, [], 299);
    assert.ok(aParts.length > 4, 'the frames span several blocks');
    const aBytes = Buffer.concat(aParts);
    a.release();
    const b = build(300, 150, 'b');
    const bParts = b.seal(HEADER, [], 449);
    assert.ok(
      bParts.some((p) => aParts.some((q) => p.buffer === q.buffer)),
      'the second segment reuses the first one\'s blocks',
    );
    for (const [bytes, first, fill] of [[aBytes, 100, 'a'], [Buffer.concat(bParts), 300, 'b']] as const) {
      const seg = decodeSegment(bytes, 'seg');
      const e = new EventView(seg.data);
      assert.equal(seg.events.length, first === 100 ? 200 : 150);
      seg.events.forEach((at, i) => {
        e.at(at);
        assert.equal(e.key().toString(), `/app/k${i}`);
        assert.equal(e.modRevision, first + i);
        assert.ok(e.value().equals(Buffer.alloc(i === 7 ? SEGMENT_BLOCK_BYTES + 10 : 3000, fill)));
      });
    }
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
  const manifest = { name, revision: String(rev), takenAt: at, prefix: '/app/', clusterId: 'c', format: 'etcd-shield', archive: archiveKey(name, '.zst') } as unknown as Manifest;
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

  test('etcd snapshots are no base for a change log: skipped by windows and paths, and a store of only snapshots says so', () => {
    const snap = snapshotBackup(backup(150, '2026-12-02T10:00:05.500Z'));
    assert.equal(pathTo([b1, snap, b2], segments, { revision: 170 }, 's').backup, b1);
    assert.deepEqual(recoveryWindows([b1, snap, b2], segments), recoveryWindows([b1, b2], segments));
    assert.throws(() => pathTo([snap], segments, { revision: 170 }, 's'), (e: Error) => e instanceof NotFoundError && /backups are all etcd snapshots/.test(e.message) && /--backup NAME or --before TIME/.test((e as NotFoundError).hint ?? ''));
  });
});

function snapshotBackup(b: BackupEntry): BackupEntry {
  return { ...b, manifest: { ...b.manifest, format: 'etcd-snapshot', prefix: '' } };
}

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

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-shield-fold-'));
  try {
    return await fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('fold', () => {
  /** Each entry in key order: key, put, lease, and the value read back from the spool. */
  const finals = (f: ChangeFold) => [...f.finish()].map((n) => [f.key(n).toString(), f.isPut(n), f.lease(n), f.values([n], Buffer.alloc(f.valueLength(n)))[0]!.toString()]);

  test('one final state per key, within the range and prefix; values stay in the spool, not in memory', () =>
    withDir(async (dir) => {
      const s = decodeSegment(sample(), 'seg');
      const f = await ChangeFold.create(Buffer.from('/app/'), path.join(dir, 'f'));
      await f.apply(s, 10, 12);
      assert.equal(f.events, 3);
      assert.equal(f.spooled, s.data.length);
      assert.deepEqual(fs.readFileSync(path.join(dir, 'f')), s.data, 'the spool holds the decoded segment');
      assert.deepEqual(finals(f), [
        ['/app/a', false, '0', ''],
        ['/app/b', true, '7587869930066745100', 'x'],
      ]);
      await f.close();

      const g = await ChangeFold.create(Buffer.from('/app/'), path.join(dir, 'g'));
      await g.apply(s, 10, 11);
      assert.deepEqual(finals(g), [['/app/a', true, '0', '1']]);
      assert.equal(g.leases.get('7587869930066745100'), '60');
      await g.close();
    }));

  test('a segment with no event in the range or under the prefix is not spooled', () =>
    withDir(async (dir) => {
      const s = decodeSegment(sample(), 'seg');
      const f = await ChangeFold.create(Buffer.from('/other/'), path.join(dir, 'f'));
      await f.apply(s, 10, 14);
      const g = await ChangeFold.create(Buffer.from('/app/'), path.join(dir, 'g'));
      await g.apply(s, 12, 14);
      assert.deepEqual([f.events, f.spooled, g.events, g.spooled], [0, 0, 0, 0]);
      assert.equal(fs.statSync(path.join(dir, 'f')).size, 0);
      await Promise.all([f.close(), g.close()]);
    }));

  test('the last of several values wins across segments, read from its own; many keys sort by their bytes', () =>
    withDir(async (dir) => {
      const a = new SegmentBuilder(11);
      a.event(put('/app/k', 'first', 11));
      a.event(put('/app/m', 'kept', 12));
      const b = new SegmentBuilder(13);
      b.event(put('/app/k', 'second', 13));
      const keys = Array.from({ length: 3000 }, (_, i) => Buffer.from(`/app/${(i * 7919) % 3000}\xff${i % 3 ? 'é' : ''}`));
      keys.forEach((k, i) => b.event({ ...put('', `v${i}`, 14), key: k }));
      const f = await ChangeFold.create(Buffer.from('/app/'), path.join(dir, 'f'));
      await f.apply(decodeSegment(Buffer.concat(a.seal(HEADER, [], 12)), 'a'), 10, 14);
      await f.apply(decodeSegment(Buffer.concat(b.seal(HEADER, [], 14)), 'b'), 12, 14);
      const all = finals(f);
      assert.deepEqual(all.filter(([k]) => k === '/app/k' || k === '/app/m').map(([k, , , v]) => [k, v]), [
        ['/app/k', 'second'],
        ['/app/m', 'kept'],
      ]);
      const order = [...f.finish()].map((n) => f.key(n));
      assert.equal(order.length, 3002);
      assert.ok(order.every((k, i) => i === 0 || Buffer.compare(order[i - 1]!, k) < 0), 'ascending byte order');
      await f.close();
    }));

  test('a spooled value that changed on disk before it is read back is refused, naming the spool and the key', () =>
    withDir(async (dir) => {
      const b = new SegmentBuilder(11);
      b.event(put('/app/k', 'the value as spooled', 11));
      b.event(put('/app/m', 'untouched', 12));
      const s = decodeSegment(Buffer.concat(b.seal(HEADER, [], 12)), 'seg');
      const file = path.join(dir, 'f');
      const f = await ChangeFold.create(Buffer.from('/app/'), file);
      await f.apply(s, 10, 12);
      const [k, m] = [...f.finish()];
      const spooled = fs.readFileSync(file);
      const at = spooled.indexOf('the value as spooled');
      assert.ok(at >= 0, 'the value is in the spool');
      // One byte of the value flipped in place, as a failing disk would.
      const fd = fs.openSync(file, 'r+');
      fs.writeSync(fd, Buffer.from([spooled[at + 4]! ^ 0x20]), 0, 1, at + 4);
      fs.closeSync(fd);
      assert.equal(f.values([m!], Buffer.alloc(f.valueLength(m!)))[0]!.toString(), 'untouched');
      assert.throws(
        () => f.values([k!], Buffer.alloc(f.valueLength(k!))),
        (err: Error) => err instanceof FileError && err.message.includes(file) && err.message.includes('"/app/k"') && /changed after it was written/.test(err.message),
      );
      await f.close();
    }));
});

describe('point source: a backup merged with a fold as it streams', () => {
  const ARCHIVE_HEADER = { tool: 'etcd-shield test', revision: '10', prefix: '/app/', clusterId: '1', memberId: '2', createdAt: '2026-12-02T03:00:00.000Z' };
  const rec = (key: string, value: string | Buffer, lease = '0'): KeyRecord => ({ key: Buffer.from(key), value: Buffer.from(value as string), createRevision: '5', modRevision: '5', version: '1', lease });

  function writeArchive(file: string, records: KeyRecord[], leases: LeaseRecord[] = []): void {
    const enc = new NativeEncoder();
    fs.writeFileSync(file, Buffer.concat([enc.start(ARCHIVE_HEADER), enc.records(rangeReplyOf(records)), ...leases.map((l) => enc.lease(l)), enc.finish()]));
  }

  async function pointOf(dir: string, backup: KeyRecord[], build: (b: SegmentBuilder) => void, segLeases: { id: string; grantedTtl: string }[] = [], leases: LeaseRecord[] = []) {
    const file = path.join(dir, 'archive');
    writeArchive(file, backup, leases);
    const b = new SegmentBuilder(11);
    build(b);
    const fold = await ChangeFold.create(Buffer.from('/app/'), path.join(dir, 'changes'));
    await fold.apply(decodeSegment(Buffer.concat(b.seal(HEADER, segLeases, 10_000)), 'seg'), 10, 10_000);
    return { file, fold, source: new PointSource(file, fold, { revision: 10_000 }) };
  }

  /** The records of a scope, copied out of each batch as it comes (a source may reuse its buffers after). */
  async function collect(source: PointSource, scope: string): Promise<{ rows: [string, string, string][]; batchBytes: number[] }> {
    const rows: [string, string, string][] = [];
    const batchBytes: number[] = [];
    await source.records(scope, async (puts: Put[]) => {
      for (const p of puts) rows.push([p.key.toString(), p.value.toString(), p.lease]);
      batchBytes.push(puts.reduce((n, p) => n + p.value.length, 0));
    });
    return { rows, batchBytes };
  }

  test('changed keys replace, deleted ones go, new ones come in key order; counts, scope and leases', () =>
    withDir(async (dir) => {
      const backup = [rec('/app/a', 'a0'), rec('/app/c', 'c0', '111'), rec('/app/e', 'e0'), rec('/app/g', 'g0', '111'), rec('/app/x/1', 'x1')];
      const { source, fold } = await pointOf(
        dir,
        backup,
        (b) => {
          b.event(put('/app/a', 'a1', 11));
          b.event(put('/app/a', 'a2', 12));
          b.event(put('/app/b', 'b1', 13));
          b.event(put('/app/c', 'c1', 14));
          b.event(del('/app/e', 15));
          b.event(put('/app/h', 'h1', 16, '222'));
          b.event(put('/app/x/0', 'x0', 17));
          b.event(put('/app/0', 'zero', 18));
        },
        [{ id: '222', grantedTtl: '30' }],
        [{ id: '111', grantedTtl: '60', remainingTtl: '40' }],
      );
      const all = await source.verify('');
      assert.deepEqual([all.records, all.inScope, all.header?.revision, [...all.usedLeases].sort()], [8, 8, '10000', ['111', '222']]);
      assert.deepEqual(all.leases.sort((x, y) => x.id.localeCompare(y.id)), [
        { id: '111', grantedTtl: '60', remainingTtl: '40' },
        { id: '222', grantedTtl: '30', remainingTtl: '30' },
      ]);
      assert.deepEqual((await collect(source, '')).rows, [
        ['/app/0', 'zero', '0'],
        ['/app/a', 'a2', '0'],
        ['/app/b', 'b1', '0'],
        ['/app/c', 'c1', '0'],
        ['/app/g', 'g0', '111'],
        ['/app/h', 'h1', '222'],
        ['/app/x/0', 'x0', '0'],
        ['/app/x/1', 'x1', '0'],
      ]);
      const sub = await source.verify('/app/x/');
      assert.deepEqual([sub.records, sub.inScope, sub.usedLeases.size], [8, 2, 0]);
      assert.deepEqual((await collect(source, '/app/x/')).rows, [
        ['/app/x/0', 'x0', '0'],
        ['/app/x/1', 'x1', '0'],
      ]);
      await fold.close();
    }));

  test('matches a plain merge across archive chunks; batches stay bounded however many new keys fall between two', () =>
    withDir(async (dir) => {
      const key = (i: number) => `/app/k${String(i).padStart(5, '0')}`;
      const backup = Array.from({ length: 1000 }, (_, i) => rec(key(i * 2), Buffer.alloc(1000, i % 26 + 97)));
      const truth = new Map(backup.map((r) => [r.key.toString(), r.value.toString()]));
      const { source, fold } = await pointOf(dir, backup, (b) => {
        let rev = 11;
        for (let i = 0; i < 2000; i += 7) {
          const v = `v${i}`;
          b.event(put(key(i), v, rev++));
          truth.set(key(i), v);
        }
        for (let i = 0; i < 2000; i += 10) {
          b.event(del(key(i), rev++));
          truth.delete(key(i));
        }
        // 600 new keys of 1 KiB between two backup keys: more than one batch's worth.
        for (let i = 0; i < 600; i++) {
          const k = `${key(1000)}-${String(i).padStart(3, '0')}`;
          const v = `n${i}`.padEnd(1024, '.');
          b.event(put(k, v, rev++));
          truth.set(k, v);
        }
      });
      const expected = [...truth.entries()].sort(([x], [y]) => (x < y ? -1 : 1));
      assert.equal((await source.verify('')).inScope, expected.length);
      const { rows, batchBytes } = await collect(source, '');
      assert.deepEqual(
        rows.map(([k, v]) => [k, v]),
        expected,
      );
      const most = Math.max(...batchBytes);
      assert.ok(most < 300 * 1024, `a batch held ${most} bytes of values`);
      await fold.close();
    }));

  test('refusals at verify: a key on a lease nobody recorded, a damaged backup; a backup changed after verify stops the write pass', () =>
    withDir(async (dir) => {
      const sub = (name: string) => {
        fs.mkdirSync(path.join(dir, name));
        return path.join(dir, name);
      };
      const lost = await pointOf(sub('lost'), [rec('/app/a', 'a0')], (b) => b.event(put('/app/b', 'b', 11, '333')));
      await assert.rejects(lost.source.verify(''), (e: Error) => e instanceof ArchiveError && /lease 333, which neither the backup nor the change log records/.test(e.message));
      await lost.fold.close();

      const damaged = await pointOf(sub('damaged'), [rec('/app/a', 'a0'), rec('/app/c', 'c0')], (b) => b.event(put('/app/b', 'b', 11)));
      const bytes = fs.readFileSync(damaged.file);
      bytes[bytes.indexOf('c0')] ^= 0x01;
      fs.writeFileSync(damaged.file, bytes);
      await assert.rejects(damaged.source.verify(''), ArchiveError);
      await damaged.fold.close();

      const changed = await pointOf(sub('changed'), [rec('/app/a', 'a0')], (b) => b.event(put('/app/b', 'b', 11)));
      await changed.source.verify('');
      fs.utimesSync(changed.file, new Date(), new Date(Date.now() + 5000));
      await assert.rejects(collect(changed.source, ''), /changed while it was being restored/);
      await changed.fold.close();
    }));
});

describe('which etcd answers a progress request in order with the events', () => {
  test('3.4.25 and 3.5.8 on, every later minor and major; not before, nor an unknown version', () => {
    const yes = ['3.4.25', '3.4.39', '3.5.8', '3.5.21', '3.6.0', '3.6.4', '4.0.0', '3.5.8-rc.0'];
    const no = ['3.4.24', '3.4.23', '3.4.0', '3.5.7', '3.5.0', '3.3.27', '2.3.8', '', 'not a version', '3.4'];
    assert.deepEqual(yes.filter((v) => !ordersRequestedProgress(v)), []);
    assert.deepEqual(no.filter((v) => ordersRequestedProgress(v)), []);
  });
});
