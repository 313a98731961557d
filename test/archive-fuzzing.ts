// What the archive fuzzing tests share: the budget, models of valid archives,
// the real encoders that build them, mutations, and reading a case back the
// two ways restore does. Used by test/unit/fuzz.test.ts (no etcd) and
// test/fuzz-restore.test.ts (a real etcd).
import { after, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { NativeEncoder } from '../src/archive/native-encode';
import { rangeReplyOf } from './range-reply';
import { MAGIC, MAGIC_PREFIX, MAX_FRAME_BYTES } from '../src/archive/native-format';
import { encodeLegacyLine } from '../src/archive/legacy';
import { scanArchive } from '../src/archive/read';
import { verifyArchive } from '../src/archive/verify';
import type { ArchiveDecoder, ArchiveHeader, ArchiveItem, KeyRecord, LeaseRecord } from '../src/archive/types';
import { ArchiveError, ExitCode } from '../src/errors';
import { distinctSorted } from './etcd-data';

// ---------------------------------------------------------------------------
// Budget

export const DEFAULT_TOTAL = 2000;
export const TOTAL = Math.max(1, Number(process.env.ETCD_SHIELD_FUZZ_RUNS) || DEFAULT_TOTAL);
export const SEED = process.env.ETCD_SHIELD_FUZZ_SEED !== undefined ? Number(process.env.ETCD_SHIELD_FUZZ_SEED) : undefined;
/** Runs for a property that gets `share` of the default budget. */
export const runs = (share: number, min = 5) => Math.max(min, Math.round(TOTAL * share));
export function fcParams<T = never>(numRuns: number): fc.Parameters<T> {
  return {
  numRuns,
  ...(SEED !== undefined ? { seed: SEED } : {}),
  // A case that takes this long is a hang.
  timeout: 15_000,
    markInterruptAsFailure: true,
  };
}

// ---------------------------------------------------------------------------
// Where an error must point: a byte offset, a line, a record or lease number,
// or (for the checks that concern the whole file) the first line, the
// record count, the emptiness of the file, the checksum or the format version.

export const WHERE =
  /\bat byte \d+|\bbyte \d+|\bline \d+|\brecord \d+|\blease -?\d+|\bfirst line|\bheader line|\bafter \d+ records|\(0 bytes\)|\bchecksum\b|\bformat version\b/;

export function assertCleanArchiveError(err: unknown, context: string): asserts err is ArchiveError {
  if (!(err instanceof ArchiveError)) {
    assert.fail(`${context}: expected an ArchiveError, got ${err instanceof Error ? `${err.constructor.name}: ${err.stack}` : String(err)}`);
  }
  assert.equal(err.exitCode, ExitCode.failure, context);
  assert.match(err.message, WHERE, `${context}: the message does not say where: ${err.message}`);
  assert.ok(!err.message.includes('\n'), `${context}: the message is not one line: ${err.message}`);
  assert.ok(err.hint && err.hint.length > 0, `${context}: no hint`);
}

// ---------------------------------------------------------------------------
// Models and encoders

export interface NativeModel {
  header: Omit<ArchiveHeader, 'format'> & { format?: unknown };
  records: KeyRecord[];
  leases: LeaseRecord[];
}

export type FrameKind = 'magic' | 'header' | 'record' | 'lease' | 'trailer';
export interface Built {
  frames: { kind: FrameKind; buf: Buffer }[];
  bytes: Buffer;
}

export function join(frames: Built['frames']): Built {
  return { frames, bytes: Buffer.concat(frames.map((f) => f.buf)) };
}

/** Encodes a model frame by frame with the real encoder (one records() call per record). */
export function buildNative(m: NativeModel): Built {
  const enc = new NativeEncoder();
  const start = enc.start(m.header as Omit<ArchiveHeader, 'format'>);
  const frames: Built['frames'] = [
    { kind: 'magic', buf: start.subarray(0, MAGIC.length) },
    { kind: 'header', buf: start.subarray(MAGIC.length) },
  ];
  for (const r of m.records) frames.push({ kind: 'record', buf: enc.records(rangeReplyOf([r])) });
  for (const l of m.leases) frames.push({ kind: 'lease', buf: enc.lease(l) });
  frames.push({ kind: 'trailer', buf: enc.finish() });
  return join(frames);
}

export interface LegacyModel {
  records: { key: Buffer; value: Buffer }[];
}

export function buildLegacy(m: LegacyModel): { lines: string[]; bytes: Buffer } {
  const lines = m.records.map((r) => encodeLegacyLine(r.key, r.value));
  return { lines, bytes: Buffer.from(lines.join(''), 'latin1') };
}

export const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String);
export const revisionStr = fc.bigInt({ min: 0n, max: 2n ** 40n }).map(String);
export const keyBytes = fc.uint8Array({ minLength: 1, maxLength: 24 }).map((a) => Buffer.from(a));
export const valueBytes = fc.oneof(
  { weight: 5, arbitrary: fc.uint8Array({ maxLength: 48 }) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 200, maxLength: 3000 }) },
).map((a) => Buffer.from(a));

export const realisticHeader = fc.record({
  tool: fc.constant('etcd-shield fuzz'),
  revision: revisionStr,
  prefix: fc.constantFrom('', '/app/', '/registry/'),
  clusterId: fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }).map(String),
  memberId: fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }).map(String),
  createdAt: fc.constant('2024-05-01T00:00:00.000Z'),
});

/** A well-formed archive: unique keys ascending, every used lease listed. */
export const nativeModel: fc.Arbitrary<NativeModel> = fc
  .record({
    header: realisticHeader,
    keys: fc.uniqueArray(keyBytes, { selector: (k) => k.toString('hex'), maxLength: 10 }),
    leaseIds: fc.uniqueArray(fc.bigInt({ min: 1n, max: 2n ** 62n }).map(String), { maxLength: 3 }),
    values: fc.array(valueBytes, { minLength: 10, maxLength: 10 }),
    revs: fc.array(fc.tuple(revisionStr, revisionStr, revisionStr), { minLength: 10, maxLength: 10 }),
    leasePick: fc.array(fc.nat(), { minLength: 10, maxLength: 10 }),
    ttls: fc.array(fc.tuple(fc.integer({ min: 1, max: 1e6 }), fc.integer({ min: -1, max: 1e6 })), { minLength: 3, maxLength: 3 }),
  })
  .map(({ header, keys, leaseIds, values, revs, leasePick, ttls }) => {
    // A backup holds only keys under its prefix.
    const prefix = Buffer.from(header.prefix);
    const sorted = distinctSorted(keys.map((k) => Buffer.concat([prefix, k])));
    const records: KeyRecord[] = sorted.map((key, i) => {
      const pick = leasePick[i]! % (leaseIds.length + 1);
      return {
        key,
        value: values[i]!,
        createRevision: revs[i]![0],
        modRevision: revs[i]![1],
        version: revs[i]![2],
        lease: pick === leaseIds.length ? '0' : leaseIds[pick]!,
      };
    });
    const leases = leaseIds.map((id, i) => ({ id, grantedTtl: String(ttls[i]![0]), remainingTtl: String(ttls[i]![1]) }));
    return { header, records, leases };
  });

/** Like the original plugin's: unique keys in descending order. */
export const legacyModel: fc.Arbitrary<LegacyModel> = fc
  .record({
    keys: fc.uniqueArray(keyBytes, { selector: (k) => k.toString('hex'), minLength: 1, maxLength: 12 }),
    values: fc.array(valueBytes, { minLength: 12, maxLength: 12 }),
  })
  .map(({ keys, values }) => ({
    records: [...keys].sort((a, b) => Buffer.compare(b, a)).map((key, i) => ({ key, value: values[i]! })),
  }));

// ---------------------------------------------------------------------------
// Mutations (each prints as its name, so a counterexample reads well)

export interface Mutation<T> {
  name: string;
  apply(input: T): Buffer;
}

export function named<T>(name: string, apply: (input: T) => Buffer): Mutation<T> {
  return Object.assign({ name, apply }, { [fc.toStringMethod]: () => name });
}

export function flips(b: Buffer, spots: [number, number][]): Buffer {
  const out = Buffer.from(b);
  for (const [o, bit] of spots) out[o % out.length]! ^= 1 << bit;
  return out;
}

export function splice(b: Buffer, at: number, remove: number, insert: Buffer): Buffer {
  const o = b.length ? at % (b.length + 1) : 0;
  return Buffer.concat([b.subarray(0, o), insert, b.subarray(Math.min(b.length, o + remove))]);
}

export const spotsArb = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 4 });
export const garbageArb = fc.uint8Array({ minLength: 1, maxLength: 600 }).map((a) => Buffer.from(a));
export const hugeLength = fc.oneof(
  fc.constantFrom(0, 1, 31, 35, MAX_FRAME_BYTES, MAX_FRAME_BYTES + 1, 0x7fffffff, 0xffffffff),
  fc.integer({ min: 0, max: 0xffffffff }),
);

export const nativeMutation: fc.Arbitrary<Mutation<Built>> = fc.oneof(
  spotsArb.map((s) => named(`flip bits ${JSON.stringify(s)}`, (a: Built) => flips(a.bytes, s))),
  fc.nat().map((i) =>
    named(`truncate at section boundary #${i}`, (a: Built) => {
      const bounds = [0];
      for (const f of a.frames) bounds.push(bounds[bounds.length - 1]! + f.buf.length);
      bounds.pop(); // the full length is not a truncation
      return a.bytes.subarray(0, bounds[i % bounds.length]!);
    }),
  ),
  fc.nat().map((o) => named(`truncate at offset ${o}`, (a: Built) => a.bytes.subarray(0, o % a.bytes.length))),
  fc.tuple(fc.nat(), fc.nat()).map(([i, j]) =>
    named(`duplicate frame ${i} at ${j}`, (a: Built) => {
      const f = [...a.frames];
      const src = f[1 + (i % (f.length - 1))]!;
      f.splice(1 + (j % f.length), 0, src);
      return join(f).bytes;
    }),
  ),
  fc.tuple(fc.nat(), fc.nat()).map(([i, j]) =>
    named(`swap frames ${i} and ${j}`, (a: Built) => {
      const f = [...a.frames];
      const x = i % f.length;
      const y = j % f.length;
      [f[x], f[y]] = [f[y]!, f[x]!];
      return join(f).bytes;
    }),
  ),
  fc.nat().map((i) =>
    named(`drop frame ${i}`, (a: Built) => {
      const f = [...a.frames];
      f.splice(i % f.length, 1);
      return join(f).bytes;
    }),
  ),
  fc.tuple(fc.nat(), hugeLength).map(([i, n]) =>
    named(`length field of frame ${i} set to ${n}`, (a: Built) => {
      const f = [...a.frames];
      const k = 1 + (i % (f.length - 1));
      const buf = Buffer.from(f[k]!.buf);
      buf.writeUInt32BE(n, 1);
      f[k] = { ...f[k]!, buf };
      return join(f).bytes;
    }),
  ),
  fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })).map(([i, t]) =>
    named(`type byte of frame ${i} set to 0x${t.toString(16)}`, (a: Built) => {
      const f = [...a.frames];
      const k = 1 + (i % (f.length - 1));
      const buf = Buffer.from(f[k]!.buf);
      buf[0] = t;
      f[k] = { ...f[k]!, buf };
      return join(f).bytes;
    }),
  ),
  fc.constantFrom('0', '2', '99', '', 'x', '1.5', '-1', '1 2', '18446744073709551617').map((v) =>
    named(`magic line version "${v}"`, (a: Built) =>
      join([{ kind: 'magic', buf: Buffer.from(`${MAGIC_PREFIX}${v}\n`) }, ...a.frames.slice(1)]).bytes,
    ),
  ),
  fc.tuple(fc.nat(), garbageArb).map(([o, g]) => named(`insert ${g.length} random bytes at ${o}`, (a: Built) => splice(a.bytes, o, 0, g))),
  fc.tuple(fc.nat(), fc.integer({ min: 1, max: 64 })).map(([o, n]) => named(`delete ${n} bytes at ${o}`, (a: Built) => splice(a.bytes, o, n, Buffer.alloc(0)))),
  garbageArb.map((g) => named(`append ${g.length} bytes after the trailer`, (a: Built) => Buffer.concat([a.bytes, g]))),
  garbageArb.map((g) => named(`magic line then ${g.length} random bytes`, () => Buffer.concat([MAGIC, g]))),
  garbageArb.map((g) => named(`${g.length} random bytes`, () => g)),
);

export const legacyMutation: fc.Arbitrary<Mutation<{ lines: string[]; bytes: Buffer }>> = fc.oneof(
  spotsArb.map((s) => named(`flip bits ${JSON.stringify(s)}`, (a: { bytes: Buffer }) => flips(a.bytes, s))),
  fc.nat().map((i) =>
    named(`truncate at line boundary #${i}`, (a: { lines: string[] }) => Buffer.from(a.lines.slice(0, i % a.lines.length).join(''), 'latin1')),
  ),
  fc.nat().map((o) => named(`truncate at offset ${o}`, (a: { bytes: Buffer }) => a.bytes.subarray(0, o % a.bytes.length))),
  fc.tuple(fc.nat(), fc.nat()).map(([i, j]) =>
    named(`swap lines ${i} and ${j}`, (a: { lines: string[] }) => {
      const l = [...a.lines];
      const x = i % l.length;
      const y = j % l.length;
      [l[x], l[y]] = [l[y]!, l[x]!];
      return Buffer.from(l.join(''), 'latin1');
    }),
  ),
  fc.tuple(fc.nat(), fc.constantFrom('', ':', ' ', ' :', ': ', '  :  ', '\t:\t', ' ; ')).map(([i, sep]) =>
    named(`line ${i} separator replaced by ${JSON.stringify(sep)}`, (a: { lines: string[] }) => {
      const l = [...a.lines];
      const k = i % l.length;
      l[k] = l[k]!.replace(' : ', sep);
      return Buffer.from(l.join(''), 'latin1');
    }),
  ),
  fc.tuple(fc.nat(), fc.constantFrom('\r\n', '\n\n', '', ' \n', '=\n', '*\n')).map(([i, end]) =>
    named(`line ${i} ends with ${JSON.stringify(end)}`, (a: { lines: string[] }) => {
      const l = [...a.lines];
      const k = i % l.length;
      l[k] = l[k]!.slice(0, -1) + end;
      return Buffer.from(l.join(''), 'latin1');
    }),
  ),
  fc.tuple(fc.nat(), fc.nat(), fc.constantFrom('*', '-', '_', '=', ' ', '\u00e9', '\u0000')).map(([i, o, ch]) =>
    named(`line ${i} char ${o} replaced by ${JSON.stringify(ch)}`, (a: { lines: string[] }) => {
      const l = [...a.lines];
      const k = i % l.length;
      const s = l[k]!;
      const at = o % (s.length - 1);
      l[k] = s.slice(0, at) + ch + s.slice(at + 1);
      return Buffer.from(l.join(''), 'latin1');
    }),
  ),
  fc.tuple(fc.nat(), garbageArb).map(([o, g]) => named(`insert ${g.length} random bytes at ${o}`, (a: { bytes: Buffer }) => splice(a.bytes, o, 0, g))),
  garbageArb.map((g) => named(`append ${g.length} random bytes`, (a: { bytes: Buffer }) => Buffer.concat([a.bytes, g]))),
  fc.constantFrom('QUJD\n', ' : QUJD\n', 'QUJD : \n', 'QUJD :QUJD\n', 'QUJD : QUJD').map((tail) =>
    named(`append ${JSON.stringify(tail)}`, (a: { bytes: Buffer }) => Buffer.concat([a.bytes, Buffer.from(tail)])),
  ),
);

// ---------------------------------------------------------------------------
// Reading back

export let tmp: string;
export let caseNo = 0;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-shield-fuzz-'));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

export function tempArchive(bytes: Buffer): string {
  const p = path.join(tmp, `case-${++caseNo}.archive`);
  fs.writeFileSync(p, bytes);
  return p;
}

export type Outcome = { ok: true; format: string; items: ArchiveItem[] } | { ok: false; error: unknown };

export const MEMORY_SLACK = 256 * 1024 * 1024;
export let memoryBaseline = 0;

/**
 * Reads an archive file both ways restore does (verifyArchive, then a scan
 * that hands over items); they must agree. The file is removed afterwards.
 */
export async function readBack(bytes: Buffer, context: string): Promise<Outcome> {
  const file = tempArchive(bytes);
  try {
    let verified: Awaited<ReturnType<typeof verifyArchive>> | undefined;
    let verifyError: unknown;
    try {
      verified = await verifyArchive(file);
    } catch (err) {
      verifyError = err;
    }
    const items: ArchiveItem[] = [];
    let scanned: { format: string } | undefined;
    let scanError: unknown;
    try {
      scanned = await scanArchive(file, (batch) => {
        items.push(...batch);
      });
    } catch (err) {
      scanError = err;
    }
    const memory = process.memoryUsage();
    assert.ok(
      memory.arrayBuffers + memory.heapUsed < memoryBaseline + MEMORY_SLACK,
      `${context}: memory grew to ${memory.arrayBuffers + memory.heapUsed} bytes reading a ${bytes.length}-byte archive`,
    );
    if (scanError !== undefined) {
      assertCleanArchiveError(scanError, `${context} (scan)`);
      assertCleanArchiveError(verifyError, `${context} (verify)`);
      assert.equal((verifyError as Error).message, scanError.message, `${context}: verify and scan disagree`);
      return { ok: false, error: scanError };
    }
    // verifyArchive checks a little more than a scan (the lease list).
    if (verifyError !== undefined) {
      assertCleanArchiveError(verifyError, `${context} (verify)`);
      return { ok: false, error: verifyError };
    }
    assert.ok(verified && scanned);
    assert.equal(verified.records, items.filter((i) => i.kind === 'record').length, context);
    return { ok: true, format: scanned.format, items };
  } finally {
    fs.rmSync(file, { force: true });
  }
}

/** Items as plain data, Buffers as hex, for deepEqual and readable diffs. */
export function plain(items: ArchiveItem[]): unknown[] {
  return items.map((i) =>
    i.kind === 'record' ? { ...i, record: { ...i.record, key: i.record.key.toString('hex'), value: i.record.value.toString('hex') } } : i,
  );
}

export function expectedNativeItems(m: NativeModel, sha256: string): unknown[] {
  return plain([
    { kind: 'header', header: { format: 1, ...m.header } as ArchiveHeader },
    ...m.records.map((record) => ({ kind: 'record' as const, record })),
    ...m.leases.map((lease) => ({ kind: 'lease' as const, lease: { ...lease } })),
    { kind: 'trailer', trailer: { records: m.records.length, leases: m.leases.length, sha256 } },
  ]);
}

export function trailerSha(b: Built): string {
  const t = b.frames[b.frames.length - 1]!.buf;
  return (JSON.parse(t.subarray(5).toString('utf8')) as { sha256: string }).sha256;
}

/**
 * An independent reading of the legacy format: one `b64 : b64` line per key,
 * every line ended by a newline, standard padded base64, non-empty and unique keys.
 * Returns undefined where the format is violated.
 */
export function referenceLegacy(bytes: Buffer): { key: Buffer; value: Buffer }[] | undefined {
  if (bytes.length === 0) return undefined;
  const text = bytes.toString('latin1');
  if (!text.endsWith('\n')) return undefined;
  const b64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
  const out: { key: Buffer; value: Buffer }[] = [];
  for (const line of text.slice(0, -1).split('\n')) {
    const at = line.indexOf(' : ');
    if (at < 0) return undefined;
    const k = line.slice(0, at);
    const v = line.slice(at + 3);
    if (k === '' || !b64.test(k) || !b64.test(v)) return undefined;
    out.push({ key: Buffer.from(k, 'base64'), value: Buffer.from(v, 'base64') });
  }
  // A repeated key (however it is spelled in base64) would make etcd refuse a transaction mid-restore.
  if (new Set(out.map((r) => r.key.toString('hex'))).size !== out.length) return undefined;
  return out;
}

export function looksNative(bytes: Buffer): boolean {
  const n = Math.min(bytes.length, MAGIC_PREFIX.length);
  return bytes.subarray(0, n).toString('latin1') === MAGIC_PREFIX.slice(0, n);
}

/** Pushes bytes through a decoder in the given chunk sizes. */
export function decodeChunked(make: () => ArchiveDecoder, bytes: Buffer, cuts: number[]): Outcome {
  const d = make();
  const items: ArchiveItem[] = [];
  try {
    let o = 0;
    for (const c of cuts) {
      const n = Math.min(c, bytes.length - o);
      if (n <= 0) break;
      items.push(...d.push(bytes.subarray(o, o + n)));
      o += n;
    }
    if (o < bytes.length) items.push(...d.push(bytes.subarray(o)));
    items.push(...d.end());
    return { ok: true, format: '', items };
  } catch (error) {
    return { ok: false, error };
  }
}

before(() => {
  const m = process.memoryUsage();
  memoryBaseline = m.arrayBuffers + m.heapUsed;
});

