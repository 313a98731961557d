// The catalogue's pure parts: names, manifests, selection and restic's keep rules.
import { strict as assert } from 'node:assert';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import type { BackupEntry, Catalogue } from '../../src/catalogue/catalogue';
import { encodeManifest, type Manifest, parseManifest } from '../../src/catalogue/manifest';
import { archiveKey, backupName, classifyKey, manifestKey, timeOfName } from '../../src/catalogue/naming';
import { planPrune } from '../../src/catalogue/prune';
import { partTarget } from '../../src/io/part-file';
import { applyRetention, type KeepRules } from '../../src/catalogue/retention';
import { parseTime, selectBackup } from '../../src/catalogue/select';
import { ArchiveError, NotFoundError, UsageError } from '../../src/errors';

function manifest(name: string, takenAt: Date): Manifest {
  return {
    kind: 'etcd-shield-backup',
    version: 1,
    name,
    archive: archiveKey(name, '.zst'),
    takenAt: takenAt.toISOString(),
    clusterId: 'cdf818194e3a8c32',
    revision: /-r(\d+)-/.exec(name)?.[1] ?? '1',
    prefix: '/registry/',
    keys: 10,
    leases: 1,
    format: 'etcd-shield',
    compression: 'zstd',
    encryption: { type: 'none', recipients: [] },
    archiveBytes: 1000,
    storedBytes: 300,
    storedSha256: 'a'.repeat(64),
    tool: 'etcd-shield 0.1.0',
  };
}

function entry(at: string | Date, revision = 1): BackupEntry {
  const takenAt = new Date(at);
  const name = backupName(takenAt, String(revision));
  const m = manifest(name, takenAt);
  return { name, manifest: m, takenAt, manifestKey: manifestKey(name), archive: { key: m.archive, size: 300, modified: takenAt } };
}

function catalogue(backups: BackupEntry[]): Catalogue {
  return { backups: [...backups].sort((a, b) => a.takenAt.getTime() - b.takenAt.getTime()), incomplete: [], problems: [] };
}

describe('names', () => {
  test('sort by time, say the revision, and tell manifests from archives', () => {
    const n = backupName(new Date('2026-12-02T03:00:00.456Z'), '123456');
    assert.match(n, /^2026-12-02T03-00-00Z-r123456-[0-9a-f]{4}$/);
    assert.equal(timeOfName(n)?.toISOString(), '2026-12-02T03:00:00.000Z');
    assert.deepEqual(classifyKey(manifestKey(n)), { name: n, role: 'manifest' });
    assert.deepEqual(classifyKey(archiveKey(n, '.zst.age')), { name: n, role: 'archive' });
    assert.equal(classifyKey('notes.txt'), undefined);
    assert.equal(classifyKey('x.archive'), undefined);
    // An etcd snapshot is stored as NAME.db...: decoded, it is a .db file as etcdctl names one.
    assert.equal(archiveKey(n, '.zst', 'etcd-snapshot'), `${n}.db.zst`);
    assert.deepEqual(classifyKey(archiveKey(n, '', 'etcd-snapshot')), { name: n, role: 'archive' });
    assert.deepEqual(classifyKey(archiveKey(n, '.gz.age', 'etcd-snapshot')), { name: n, role: 'archive' });
    for (const other of [`${n}.dbx`, `${n}.archived`, `${n}.manifest.json.bak`, `${n}`]) assert.equal(classifyKey(other), undefined, other);
    const later = backupName(new Date('2026-12-02T03:00:01Z'), '99');
    assert.ok([later, n].sort()[0] === n, 'names sort by time, not by revision');
  });
  test('two backups in the same second at the same revision get different names', () => {
    const at = new Date('2026-12-02T03:00:00Z');
    const names = new Set(Array.from({ length: 50 }, () => backupName(at, '7')));
    assert.ok(names.size > 40);
  });
});

describe('manifests', () => {
  test('round trip, and they hold no key names or values', () => {
    const m = manifest(backupName(new Date(), '5'), new Date());
    const bytes = encodeManifest(m);
    assert.deepEqual(parseManifest(bytes, manifestKey(m.name)), m);
    assert.deepEqual(Object.keys(m).sort(), [
      'archive', 'archiveBytes', 'clusterId', 'compression', 'encryption', 'format', 'keys', 'kind', 'leases', 'name', 'prefix', 'revision', 'storedBytes', 'storedSha256', 'takenAt', 'tool', 'version',
    ]);
  });
  test('damaged, foreign or renamed manifests are refused with the key and field', () => {
    const m = manifest(backupName(new Date(), '5'), new Date());
    const key = manifestKey(m.name);
    assert.throws(() => parseManifest(Buffer.from('{"kind":'), key), (e: Error) => e instanceof ArchiveError && e.message.includes(key) && /not valid JSON/.test(e.message));
    assert.throws(() => parseManifest(encodeManifest({ ...m, storedSha256: 'xyz' }), key), /storedSha256/);
    assert.throws(() => parseManifest(Buffer.from(JSON.stringify({ ...m, keys: -1 })), key), /keys/);
    assert.throws(() => parseManifest(encodeManifest(m), manifestKey(backupName(new Date(), '6'))), /names another backup/);
  });
});

describe('selection', () => {
  const cat = catalogue([entry('2026-12-01T00:00:00Z', 10), entry('2026-12-02T00:00:00Z', 20), entry('2026-12-03T00:00:00Z', 30)]);
  test('newest by default, by name, or the newest at or before a time', () => {
    assert.equal(selectBackup(cat, {}, 'file:///b').manifest.revision, '30');
    assert.equal(selectBackup(cat, { name: cat.backups[0].name }, 'file:///b').manifest.revision, '10');
    assert.equal(selectBackup(cat, { before: new Date('2026-12-02T00:00:00Z') }, 'file:///b').manifest.revision, '20');
    assert.equal(selectBackup(cat, { before: new Date('2026-12-02T23:59:59Z') }, 'file:///b').manifest.revision, '20');
  });
  test('nothing to take says what the store holds', () => {
    assert.throws(() => selectBackup(catalogue([]), {}, 'file:///b'), (e: Error) => e instanceof NotFoundError && /holds no complete backup/.test(e.message));
    assert.throws(() => selectBackup(cat, { name: 'nope' }, 'file:///b'), (e: Error) => e instanceof NotFoundError && e.message.includes(cat.backups[2].name));
    assert.throws(() => selectBackup(cat, { before: new Date('2020-01-01Z') }, 'file:///b'), (e: Error) => e instanceof NotFoundError && /oldest is/.test(e.message));
    const incomplete = { ...cat, incomplete: [{ key: archiveKey('2026-12-04T00-00-00Z-r40-abcd', '.zst'), size: 1, modified: new Date() }] };
    assert.throws(() => selectBackup(incomplete, { name: '2026-12-04T00-00-00Z-r40-abcd' }, 'file:///b'), /is incomplete/);
  });
  test('times: ISO 8601 or a date; anything else is refused', () => {
    assert.equal(parseTime('2026-12-02', '--before').toISOString(), '2026-12-02T00:00:00.000Z');
    assert.equal(parseTime('2026-12-02T14:31:58Z', '--before').toISOString(), '2026-12-02T14:31:58.000Z');
    assert.equal(parseTime('2026-12-02T14:31:58+01:00', '--before').toISOString(), '2026-12-02T13:31:58.000Z');
    assert.throws(() => parseTime('yesterday', '--before'), (e: Error) => e instanceof UsageError && /--before/.test(e.message));
  });
});

describe('retention (restic rules, UTC)', () => {
  const hourly = Array.from({ length: 24 * 40 }, (_, i) => entry(new Date(Date.UTC(2026, 10, 1) + i * 3600_000), i + 1));
  const kept = (rules: KeepRules, list = hourly) =>
    applyRetention(list, rules)
      .filter((d) => d.keep)
      .map((d) => d.backup.manifest.takenAt);

  test('last N keeps the N newest', () => {
    assert.deepEqual(kept({ last: 3 }), hourly.slice(-3).reverse().map((b) => b.manifest.takenAt));
  });
  test('daily N keeps the newest of each of the N newest days', () => {
    const k = kept({ daily: 3 });
    assert.deepEqual(k, ['2026-12-10T23:00:00.000Z', '2026-12-09T23:00:00.000Z', '2026-12-08T23:00:00.000Z']);
  });
  test('weekly and monthly use ISO weeks and calendar months', () => {
    assert.deepEqual(kept({ monthly: 2 }), ['2026-12-10T23:00:00.000Z', '2026-11-30T23:00:00.000Z']);
    // 2026-12-06 is a Sunday: the end of ISO week 49.
    assert.deepEqual(kept({ weekly: 2 }), ['2026-12-10T23:00:00.000Z', '2026-12-06T23:00:00.000Z']);
  });
  test('rules combine, and each kept backup says why', () => {
    const d = applyRetention(hourly, { last: 2, daily: 2 });
    assert.deepEqual(d[0].reasons, ['last 1/2', 'daily 2026-12-10']);
    assert.deepEqual(d[1].reasons, ['last 2/2']);
    assert.deepEqual(d[24].reasons, ['daily 2026-12-09']);
    assert.equal(d.filter((x) => x.keep).length, 3);
  });
  test('days without a backup do not use up a daily slot', () => {
    const sparse = [entry('2026-12-01T10:00:00Z'), entry('2026-12-05T10:00:00Z'), entry('2026-12-09T10:00:00Z')];
    assert.equal(kept({ daily: 3 }, sparse).length, 3);
  });
  test('no rule is refused; the newest is always kept', () => {
    assert.throws(() => applyRetention(hourly, {}), (e: unknown) => e instanceof UsageError && /every backup but the newest/.test(e.message) && /--keep-yearly N/.test(e.hint));
    const d = applyRetention(hourly, { yearly: 1 });
    assert.equal(d.filter((x) => x.keep).length, 1);
    assert.ok(d[0].keep);
  });
  test('properties: the newest stays, last N keeps at least N, and no backup is kept without a reason', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 400 * 24 * 60 }), { minLength: 1, maxLength: 60 }),
        fc.record({ last: fc.nat(5), hourly: fc.nat(5), daily: fc.nat(5), weekly: fc.nat(5), monthly: fc.nat(5) }),
        (minutes, rules) => {
          fc.pre(Object.values(rules).some((n) => n > 0));
          const list = minutes.map((m, i) => entry(new Date(Date.UTC(2026, 0, 1) + m * 60_000), i + 1));
          const d = applyRetention(list, rules);
          assert.ok(d[0].keep);
          assert.equal(d[0].backup.takenAt.getTime(), Math.max(...list.map((b) => b.takenAt.getTime())));
          for (const x of d) assert.equal(x.keep, x.reasons.length > 0);
          assert.ok(d.filter((x) => x.keep).length >= Math.min(rules.last, list.length));
          const days = new Set(list.map((b) => b.manifest.takenAt.slice(0, 10))).size;
          assert.ok(d.filter((x) => x.reasons.some((r) => r.startsWith('daily'))).length === Math.min(rules.daily, days));
        },
      ),
    );
  });
  test('prune plans to remove incomplete archives only once they are a day old', () => {
    const now = new Date('2026-12-10T12:00:00Z');
    const cat = { ...catalogue([entry('2026-12-10T00:00:00Z')]), incomplete: [
      { key: archiveKey('2026-12-09T00-00-00Z-r1-aaaa', '.zst'), size: 5, modified: new Date('2026-12-09T11:00:00Z') },
      { key: archiveKey('2026-12-10T11-00-00Z-r2-bbbb', '.zst'), size: 5, modified: new Date('2026-12-10T11:00:00Z') },
    ] };
    assert.deepEqual(planPrune(cat, { last: 1 }, now).staleIncomplete.map((o) => o.key), [archiveKey('2026-12-09T00-00-00Z-r1-aaaa', '.zst')]);
  });
  test("prune plans to remove killed runs' unfinished writes only once nothing has written to them for a day", () => {
    const now = new Date('2026-12-10T12:00:00Z');
    const write = (id: string, modified: string) => ({ id, key: partTarget(id)!, size: 9, modified: new Date(modified) });
    const unfinished = [write('.old.archive.zst.00001.part', '2026-12-09T11:59:59Z'), write('.new.archive.zst.00002.part', '2026-12-10T11:00:00Z')];
    const plan = planPrune(catalogue([entry('2026-12-10T00:00:00Z')]), { last: 1 }, now, unfinished);
    assert.deepEqual(plan.staleUnfinished.map((w) => w.id), ['.old.archive.zst.00001.part']);
    assert.deepEqual(planPrune(catalogue([]), { last: 1 }, now).staleUnfinished, []);
  });
});
