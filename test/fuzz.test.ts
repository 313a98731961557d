// Fuzzing the archive readers (issue 5, parts 1, 5 and 6).
//
// In-process: valid archives are built with the real encoders, mutated (bit
// flips, truncation at every section boundary and at random offsets,
// duplicated, reordered and dropped frames, oversized lengths, wrong versions,
// garbage, legacy lines without the separator, ...) and read back through
// verifyArchive / scanArchive and the push decoders. Each must end in an
// ArchiveError whose message says where, or in exactly the original content.
//
// Against a real etcd: mutated archives through `etcd-shield restore
// --overwrite`; a failed restore must leave the keyspace byte-identical.
//
// Case count: about 2,000 by default; ETCD_SHIELD_FUZZ_RUNS=N scales the whole
// file to about N cases (ETCD_SHIELD_FUZZ_SEED=S replays a seed).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { Etcd3 } from 'etcd3';
import { NativeDecoder } from '../src/archive/native-decode';
import { NativeEncoder } from '../src/archive/native-encode';
import { rangeReplyOf } from './range-reply';
import { MAGIC, MAGIC_PREFIX, MAX_FRAME_BYTES } from '../src/archive/native-format';
import { encodeLegacyLine, LegacyDecoder } from '../src/archive/legacy';
import { scanArchive } from '../src/archive/read';
import { verifyArchive } from '../src/archive/verify';
import type { ArchiveDecoder, ArchiveHeader, ArchiveItem, KeyRecord, LeaseRecord } from '../src/archive/types';
import { ArchiveError, ExitCode } from '../src/errors';
import { parseEndpointJson } from '../src/shield/endpoint-json';
import { describeRun, runCli, type CliResult } from './cli';
import { distinctSorted } from './etcd-data';
import { withEtcd } from './harness';

// ---------------------------------------------------------------------------
// Budget

const DEFAULT_TOTAL = 2000;
const TOTAL = Math.max(1, Number(process.env.ETCD_SHIELD_FUZZ_RUNS) || DEFAULT_TOTAL);
const SEED = process.env.ETCD_SHIELD_FUZZ_SEED !== undefined ? Number(process.env.ETCD_SHIELD_FUZZ_SEED) : undefined;
/** Runs for a property that gets `share` of the default budget. */
const runs = (share: number, min = 5) => Math.max(min, Math.round(TOTAL * share));
function fcParams<T = never>(numRuns: number): fc.Parameters<T> {
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

const WHERE =
  /\bat byte \d+|\bbyte \d+|\bline \d+|\brecord \d+|\blease -?\d+|\bfirst line|\bheader line|\bafter \d+ records|\(0 bytes\)|\bchecksum\b|\bformat version\b/;

function assertCleanArchiveError(err: unknown, context: string): asserts err is ArchiveError {
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

interface NativeModel {
  header: Omit<ArchiveHeader, 'format'> & { format?: unknown };
  records: KeyRecord[];
  leases: LeaseRecord[];
}

type FrameKind = 'magic' | 'header' | 'record' | 'lease' | 'trailer';
interface Built {
  frames: { kind: FrameKind; buf: Buffer }[];
  bytes: Buffer;
}

function join(frames: Built['frames']): Built {
  return { frames, bytes: Buffer.concat(frames.map((f) => f.buf)) };
}

/** Encodes a model frame by frame with the real encoder (one records() call per record). */
function buildNative(m: NativeModel): Built {
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

interface LegacyModel {
  records: { key: Buffer; value: Buffer }[];
}

function buildLegacy(m: LegacyModel): { lines: string[]; bytes: Buffer } {
  const lines = m.records.map((r) => encodeLegacyLine(r.key, r.value));
  return { lines, bytes: Buffer.from(lines.join(''), 'latin1') };
}

const int64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String);
const revisionStr = fc.bigInt({ min: 0n, max: 2n ** 40n }).map(String);
const keyBytes = fc.uint8Array({ minLength: 1, maxLength: 24 }).map((a) => Buffer.from(a));
const valueBytes = fc.oneof(
  { weight: 5, arbitrary: fc.uint8Array({ maxLength: 48 }) },
  { weight: 1, arbitrary: fc.uint8Array({ minLength: 200, maxLength: 3000 }) },
).map((a) => Buffer.from(a));

const realisticHeader = fc.record({
  tool: fc.constant('etcd-shield fuzz'),
  revision: revisionStr,
  prefix: fc.constantFrom('', '/app/', '/registry/'),
  clusterId: fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }).map(String),
  memberId: fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }).map(String),
  createdAt: fc.constant('2024-05-01T00:00:00.000Z'),
});

/** A well-formed archive: unique keys ascending, every used lease listed. */
const nativeModel: fc.Arbitrary<NativeModel> = fc
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
const legacyModel: fc.Arbitrary<LegacyModel> = fc
  .record({
    keys: fc.uniqueArray(keyBytes, { selector: (k) => k.toString('hex'), minLength: 1, maxLength: 12 }),
    values: fc.array(valueBytes, { minLength: 12, maxLength: 12 }),
  })
  .map(({ keys, values }) => ({
    records: [...keys].sort((a, b) => Buffer.compare(b, a)).map((key, i) => ({ key, value: values[i]! })),
  }));

// ---------------------------------------------------------------------------
// Mutations (each prints as its name, so a counterexample reads well)

interface Mutation<T> {
  name: string;
  apply(input: T): Buffer;
}

function named<T>(name: string, apply: (input: T) => Buffer): Mutation<T> {
  return Object.assign({ name, apply }, { [fc.toStringMethod]: () => name });
}

function flips(b: Buffer, spots: [number, number][]): Buffer {
  const out = Buffer.from(b);
  for (const [o, bit] of spots) out[o % out.length]! ^= 1 << bit;
  return out;
}

function splice(b: Buffer, at: number, remove: number, insert: Buffer): Buffer {
  const o = b.length ? at % (b.length + 1) : 0;
  return Buffer.concat([b.subarray(0, o), insert, b.subarray(Math.min(b.length, o + remove))]);
}

const spotsArb = fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 7 })), { minLength: 1, maxLength: 4 });
const garbageArb = fc.uint8Array({ minLength: 1, maxLength: 600 }).map((a) => Buffer.from(a));
const hugeLength = fc.oneof(
  fc.constantFrom(0, 1, 31, 35, MAX_FRAME_BYTES, MAX_FRAME_BYTES + 1, 0x7fffffff, 0xffffffff),
  fc.integer({ min: 0, max: 0xffffffff }),
);

const nativeMutation: fc.Arbitrary<Mutation<Built>> = fc.oneof(
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

const legacyMutation: fc.Arbitrary<Mutation<{ lines: string[]; bytes: Buffer }>> = fc.oneof(
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

let tmp: string;
let caseNo = 0;
before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-shield-fuzz-'));
});
after(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function tempArchive(bytes: Buffer): string {
  const p = path.join(tmp, `case-${++caseNo}.archive`);
  fs.writeFileSync(p, bytes);
  return p;
}

type Outcome = { ok: true; format: string; items: ArchiveItem[] } | { ok: false; error: unknown };

const MEMORY_SLACK = 256 * 1024 * 1024;
let memoryBaseline = 0;

/**
 * Reads an archive file both ways restore does (verifyArchive, then a scan
 * that hands over items); they must agree. The file is removed afterwards.
 */
async function readBack(bytes: Buffer, context: string): Promise<Outcome> {
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
function plain(items: ArchiveItem[]): unknown[] {
  return items.map((i) =>
    i.kind === 'record' ? { ...i, record: { ...i.record, key: i.record.key.toString('hex'), value: i.record.value.toString('hex') } } : i,
  );
}

function expectedNativeItems(m: NativeModel, sha256: string): unknown[] {
  return plain([
    { kind: 'header', header: { format: 1, ...m.header } as ArchiveHeader },
    ...m.records.map((record) => ({ kind: 'record' as const, record })),
    ...m.leases.map((lease) => ({ kind: 'lease' as const, lease: { ...lease } })),
    { kind: 'trailer', trailer: { records: m.records.length, leases: m.leases.length, sha256 } },
  ]);
}

function trailerSha(b: Built): string {
  const t = b.frames[b.frames.length - 1]!.buf;
  return (JSON.parse(t.subarray(5).toString('utf8')) as { sha256: string }).sha256;
}

/**
 * An independent reading of the legacy format: one `b64 : b64` line per key,
 * every line ended by a newline, standard padded base64, non-empty and unique keys.
 * Returns undefined where the format is violated.
 */
function referenceLegacy(bytes: Buffer): { key: Buffer; value: Buffer }[] | undefined {
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

function looksNative(bytes: Buffer): boolean {
  const n = Math.min(bytes.length, MAGIC_PREFIX.length);
  return bytes.subarray(0, n).toString('latin1') === MAGIC_PREFIX.slice(0, n);
}

/** Pushes bytes through a decoder in the given chunk sizes. */
function decodeChunked(make: () => ArchiveDecoder, bytes: Buffer, cuts: number[]): Outcome {
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

// ---------------------------------------------------------------------------
// In-process properties

test('the unmutated archives read back exactly (the oracle itself)', async () => {
  await fc.assert(
    fc.asyncProperty(nativeModel, async (m) => {
      const b = buildNative(m);
      const got = await readBack(b.bytes, 'intact native');
      assert.ok(got.ok, `intact archive rejected: ${String(!got.ok && got.error)}`);
      assert.equal(got.format, 'etcd-shield');
      assert.deepEqual(plain(got.items), expectedNativeItems(m, trailerSha(b)));
    }),
    fcParams(runs(0.025)),
  );
  await fc.assert(
    fc.asyncProperty(legacyModel, async (m) => {
      const got = await readBack(buildLegacy(m).bytes, 'intact legacy');
      assert.ok(got.ok, `intact archive rejected: ${String(!got.ok && got.error)}`);
      assert.equal(got.format, 'legacy');
      assert.deepEqual(
        got.items.map((i) => (i.kind === 'record' ? [i.record.key.toString('hex'), i.record.value.toString('hex')] : i.kind)),
        m.records.map((r) => [r.key.toString('hex'), r.value.toString('hex')]),
      );
    }),
    fcParams(runs(0.025)),
  );
});

test('native archive, mutated: a clean ArchiveError saying where, or exactly the original', async () => {
  await fc.assert(
    fc.asyncProperty(nativeModel, nativeMutation, async (m, mutation) => {
      const b = buildNative(m);
      const bytes = mutation.apply(b);
      const got = await readBack(bytes, mutation.name);
      if (!got.ok) return;
      // Everything but the trailer is under the sha256, so whatever is accepted is the original.
      assert.equal(got.format, 'etcd-shield', `${mutation.name}: accepted as ${got.format}`);
      assert.deepEqual(plain(got.items), expectedNativeItems(m, trailerSha(b)), mutation.name);
    }),
    fcParams(runs(0.4)),
  );
});

test('native archive truncated at every section boundary and every offset of one archive', async () => {
  const model = fc.sample(nativeModel.filter((m) => m.records.length >= 4 && m.leases.length >= 1), { numRuns: 1, seed: 42 })[0]!;
  const b = buildNative(model);
  let at = 0;
  const bounds: number[] = [];
  for (const f of b.frames) {
    bounds.push(at);
    at += f.buf.length;
  }
  for (const cut of bounds) {
    const got = await readBack(b.bytes.subarray(0, cut), `cut at boundary ${cut}`);
    assert.equal(got.ok, false, `truncated at section boundary ${cut} of ${b.bytes.length} but accepted`);
  }
  // Every offset inside the magic line, the header and the first record and the last frames.
  const offsets = new Set<number>();
  for (let o = 0; o < Math.min(b.bytes.length, bounds[3]! + 8); o++) offsets.add(o);
  for (let o = Math.max(0, b.bytes.length - 120); o < b.bytes.length; o++) offsets.add(o);
  for (const o of offsets) {
    const d = decodeChunked(() => new NativeDecoder(), b.bytes.subarray(0, o), [o]);
    assert.equal(d.ok, false, `truncated at ${o} of ${b.bytes.length} but accepted`);
    assertCleanArchiveError(!d.ok && d.error, `truncated at ${o}`);
  }
});

test('crafted archives (consistent checksum, arbitrary content): accepted exactly when well-formed', async () => {
  // Header fields of any text, int64s anywhere in range, keys in any order and
  // inside or outside the header prefix, leases listed or not: the checksum
  // matches, so only the structure decides.
  const crafted = fc.record({
    header: fc.record({
      tool: fc.string(),
      revision: fc.oneof({ weight: 4, arbitrary: revisionStr }, { weight: 1, arbitrary: fc.string() }),
      prefix: fc.oneof(fc.constant(''), fc.string({ maxLength: 4 })),
      clusterId: fc.oneof({ weight: 4, arbitrary: revisionStr }, { weight: 1, arbitrary: fc.string() }),
      memberId: fc.oneof({ weight: 4, arbitrary: revisionStr }, { weight: 1, arbitrary: fc.string() }),
      createdAt: fc.string(),
      format: fc.constantFrom<unknown>(1, 1, 1, 0, 2, '1', null, 1.5),
    }),
    // Keys under the header prefix, as a backup writes them, or anywhere.
    underPrefix: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
    dropHeaderField: fc.option(fc.constantFrom('tool', 'revision', 'prefix', 'clusterId', 'memberId', 'createdAt'), { freq: 5 }),
    records: fc.array(
      fc.record({
        key: fc.oneof({ weight: 9, arbitrary: keyBytes }, { weight: 1, arbitrary: fc.constant(Buffer.alloc(0)) }),
        value: valueBytes,
        createRevision: int64,
        modRevision: int64,
        version: int64,
        lease: fc.oneof(fc.constant('0'), fc.constantFrom('7', '-7', '9223372036854775807')),
      }),
      { maxLength: 8 },
    ),
    sortKeys: fc.boolean(),
    leases: fc.uniqueArray(
      fc.record({ id: fc.constantFrom('7', '-7', '9223372036854775807', '5'), grantedTtl: int64, remainingTtl: int64 }),
      { selector: (l) => l.id, maxLength: 4 },
    ),
  });
  await fc.assert(
    fc.asyncProperty(crafted, async (c) => {
      const header: Record<string, unknown> = { ...c.header };
      if (c.dropHeaderField) delete header[c.dropHeaderField];
      const prefix = Buffer.from(c.header.prefix);
      const placed = c.records.map((r, i) => (c.underPrefix[i] ? { ...r, key: Buffer.concat([prefix, r.key]) } : r));
      const records = c.sortKeys ? [...placed].sort((a, b) => Buffer.compare(a.key, b.key)) : placed;
      const model: NativeModel = { header: header as NativeModel['header'], records, leases: c.leases };
      const b = buildNative(model);
      const got = await readBack(b.bytes, 'crafted');
      const ascending = records.every((r, i) => i === 0 || Buffer.compare(records[i - 1]!.key, r.key) < 0);
      const listed = new Set(c.leases.map((l) => l.id));
      const numeric = (v: string) => /^\d{1,20}$/.test(v);
      const wellFormed =
        c.header.format === 1 &&
        !c.dropHeaderField &&
        numeric(c.header.revision) &&
        numeric(c.header.clusterId) &&
        numeric(c.header.memberId) &&
        records.every((r) => r.key.length > 0 && r.key.subarray(0, prefix.length).equals(prefix)) &&
        ascending &&
        records.every((r) => r.lease === '0' || listed.has(r.lease));
      assert.equal(got.ok, wellFormed, `well-formed=${wellFormed} but ${got.ok ? 'accepted' : `rejected: ${String((got as { error: unknown }).error)}`}`);
      if (got.ok) assert.deepEqual(plain(got.items), expectedNativeItems({ ...model, header: { ...c.header, format: 1 } as NativeModel['header'] }, trailerSha(b)));
    }),
    fcParams(runs(0.1)),
  );
});

test('legacy archive, mutated: a clean ArchiveError naming the line, or exactly what the lines say', async () => {
  // Legacy archives have no trailer: a cut at a line boundary is a valid,
  // shorter archive, so the oracle is an independent parser, not the original.
  await fc.assert(
    fc.asyncProperty(legacyModel, legacyMutation, async (m, mutation) => {
      const bytes = mutation.apply(buildLegacy(m));
      const got = await readBack(bytes, mutation.name);
      const expected = looksNative(bytes) ? undefined : referenceLegacy(bytes);
      if (!got.ok) {
        assert.equal(expected, undefined, `${mutation.name}: a well-formed legacy archive was rejected: ${String(got.error)}`);
        return;
      }
      assert.ok(expected, `${mutation.name}: a malformed legacy archive was accepted`);
      assert.equal(got.format, 'legacy');
      assert.deepEqual(
        got.items.map((i) => (i.kind === 'record' ? [i.record.key.toString('hex'), i.record.value.toString('hex')] : i.kind)),
        expected.map((r) => [r.key.toString('hex'), r.value.toString('hex')]),
        mutation.name,
      );
    }),
    fcParams(runs(0.25)),
  );
});

test('a legacy line without the " : " separator is an error naming the line, never a crash', async () => {
  const lines = ['a2V5Mw== : djM=\n', 'a2V5Mg== djI=\n', 'a2V5MQ== : djE=\n'];
  const got = await readBack(Buffer.from(lines.join('')), 'no separator');
  assert.equal(got.ok, false);
  assertCleanArchiveError(!got.ok && got.error, 'no separator');
  assert.match((got as { error: Error }).error.message, /line 2\b/);
});

test('legacy archive with a repeated key is refused naming the line (etcd refuses duplicate keys in one transaction)', async () => {
  const lines = [encodeLegacyLine(Buffer.from('/b'), Buffer.from('2')), encodeLegacyLine(Buffer.from('/a'), Buffer.from('1'))];
  const got = await readBack(Buffer.from([lines[0], lines[1], lines[1]].join(''), 'latin1'), 'repeated key');
  assert.equal(got.ok, false, 'a legacy archive with a repeated key was accepted');
  assertCleanArchiveError(!got.ok && got.error, 'repeated key');
  assert.match((got as { error: Error }).error.message, /line 3\b/);
});

test('legacy archive with one key in two base64 spellings is refused too', async () => {
  // Non-zero padding bits: BASE64_RE accepts both spellings, and both decode to the same byte.
  const got = await readBack(Buffer.from('Qg== : Mg==\nQQ== : MQ==\nQR== : Mw==\n', 'latin1'), 'base64 alias');
  assert.equal(got.ok, false, 'a legacy archive with a repeated key (two spellings) was accepted');
  assertCleanArchiveError(!got.ok && got.error, 'base64 alias');
  assert.match((got as { error: Error }).error.message, /line 3\b/);
});

test('chunking never changes the outcome: any split of the input decodes to the same items or fails', () => {
  const input = fc.oneof(
    fc.tuple(nativeModel, fc.option(nativeMutation, { freq: 3 })).map(([m, mut]) => {
      const b = buildNative(m);
      return { native: true, bytes: mut ? mut.apply(b) : b.bytes, name: mut?.name ?? 'intact' };
    }),
    fc.tuple(legacyModel, fc.option(legacyMutation, { freq: 3 })).map(([m, mut]) => {
      const b = buildLegacy(m);
      return { native: false, bytes: mut ? mut.apply(b) : b.bytes, name: mut?.name ?? 'intact' };
    }),
  );
  fc.assert(
    fc.property(input, fc.array(fc.integer({ min: 1, max: 97 }), { maxLength: 40 }), (inp, cuts) => {
      const make = () => (inp.native ? new NativeDecoder() : new LegacyDecoder());
      const whole = decodeChunked(make, inp.bytes, [inp.bytes.length]);
      const split = decodeChunked(make, inp.bytes, cuts);
      for (const o of [whole, split]) if (!o.ok) assertCleanArchiveError(o.error, inp.name);
      assert.equal(split.ok, whole.ok, `${inp.name}: whole ${whole.ok ? 'ok' : String((whole as { error: unknown }).error)}, split ${split.ok ? 'ok' : String((split as { error: unknown }).error)}`);
      if (whole.ok && split.ok) assert.deepEqual(plain(split.items), plain(whole.items), inp.name);
    }),
    fcParams(runs(0.15)),
  );
});

test('oversized lengths allocate nothing: a frame claiming 4 GiB, a legacy line that never ends', () => {
  const enc = new NativeEncoder();
  const head = enc.start({ tool: 't', revision: '1', prefix: '', clusterId: '1', memberId: '1', createdAt: 'now' });
  const before = process.memoryUsage().arrayBuffers;
  for (const claim of [MAX_FRAME_BYTES - 1, MAX_FRAME_BYTES, MAX_FRAME_BYTES + 1, 0xffffffff]) {
    const frame = Buffer.alloc(5);
    frame[0] = 0x52;
    frame.writeUInt32BE(claim, 1);
    const d = decodeChunked(() => new NativeDecoder(), Buffer.concat([head, frame, Buffer.alloc(64)]), [7, 3]);
    assert.equal(d.ok, false);
    assertCleanArchiveError(!d.ok && d.error, `claim ${claim}`);
    assert.match((d as { error: Error }).error.message, new RegExp(`at byte ${head.length}\\b`));
  }
  assert.ok(process.memoryUsage().arrayBuffers - before < 64 * 1024 * 1024, 'the decoder allocated what the length field claimed');
  // 8 MiB of base64 without a newline, pushed in 64 KiB chunks: buffered, then refused at the end.
  const d = new LegacyDecoder();
  const chunk = Buffer.alloc(64 * 1024, 0x41);
  for (let i = 0; i < 128; i++) d.push(chunk);
  assert.throws(() => d.end(), (err: unknown) => {
    assertCleanArchiveError(err, 'endless line');
    return /line 1\b/.test(err.message);
  });
});

// ---------------------------------------------------------------------------
// verify through the CLI (issue 5, part 6)

function assertNoCrash(r: CliResult, context: string): void {
  assert.doesNotMatch(r.stderr, /^\s+at .+:\d+:\d+\)?$/m, `${context}: a stack trace on stderr\n${describeRun(r)}`);
  assert.doesNotMatch(r.stderr, /unexpected error/i, `${context}: not a handled error\n${describeRun(r)}`);
}

test('verify (--in, stdin, --json) exits 0 only for intact archives', async () => {
  const model = fc.sample(nativeModel.filter((m) => m.records.length >= 3), { numRuns: 1, seed: 7 })[0]!;
  const b = buildNative(model);
  const legacy = buildLegacy({ records: [...model.records].reverse() }).bytes;
  const good = tempArchive(b.bytes);
  const goodLegacy = tempArchive(legacy);

  for (const [name, file, bytes, keys] of [
    ['native', good, b.bytes, model.records.length],
    ['legacy', goodLegacy, legacy, model.records.length],
  ] as const) {
    const viaFile = await runCli(['verify', '--in', file]);
    assert.equal(viaFile.code, 0, `${name} --in\n${describeRun(viaFile)}`);
    assert.match(viaFile.stdout.toString(), /intact/);
    const viaStdin = await runCli(['verify', '--json'], { input: bytes });
    assert.equal(viaStdin.code, 0, `${name} stdin --json\n${describeRun(viaStdin)}`);
    const summary = JSON.parse(viaStdin.stdout.toString()) as { ok: boolean; keys: number; format: string };
    assert.equal(summary.ok, true);
    assert.equal(summary.keys, keys);
    assert.equal(summary.format, name === 'native' ? 'etcd-shield' : 'legacy');
  }

  const broken: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['no trailer', b.bytes.subarray(0, b.bytes.length - b.frames[b.frames.length - 1]!.buf.length)],
    ['one bit flipped in a record', flips(b.bytes, [[b.frames[0]!.buf.length + b.frames[1]!.buf.length + 12, 0]])],
    ['garbage after the trailer', Buffer.concat([b.bytes, Buffer.from('x')])],
    ['legacy line without separator', Buffer.concat([legacy, Buffer.from('QUJD QUJD\n')])],
    ['legacy cut mid-line', legacy.subarray(0, legacy.length - 2)],
    ['random bytes', Buffer.from(fc.sample(garbageArb, { numRuns: 1, seed: 3 })[0]!)],
  ];
  for (const [name, bytes] of broken) {
    for (const json of [false, true]) {
      const args = json ? ['verify', '--json'] : ['verify'];
      const viaStdin = await runCli(args, { input: bytes });
      assert.equal(viaStdin.code, ExitCode.failure, `${name} (stdin${json ? ', --json' : ''})\n${describeRun(viaStdin)}`);
      assertNoCrash(viaStdin, name);
      assert.doesNotMatch(viaStdin.stdout.toString(), /"ok":\s*true|intact/, name);
      if (bytes.length > 0) {
        const viaFile = await runCli([...args, '--in', tempArchive(bytes)]);
        assert.equal(viaFile.code, ExitCode.failure, `${name} (--in)\n${describeRun(viaFile)}`);
        assertNoCrash(viaFile, name);
      }
    }
  }
  const missing = await runCli(['verify', '--in', path.join(tmp, 'no-such-file')]);
  assert.equal(missing.code, ExitCode.failure, describeRun(missing));
  assertNoCrash(missing, 'missing file');
});

test(
  'verify never crashes on a crafted archive with odd header fields (consistent checksum)',
  async () => {
    const odd = fc.record({
      tool: fc.string(),
      revision: fc.oneof(fc.string(), revisionStr),
      prefix: fc.string(),
      clusterId: fc.oneof(fc.string(), fc.constantFrom('-1', '0x10', '1e3', ' 12', '', '18446744073709551616')),
      memberId: fc.string(),
      createdAt: fc.string(),
    });
    await fc.assert(
      fc.asyncProperty(odd, async (header) => {
        const b = buildNative({ header, records: [], leases: [] });
        const r = await runCli(['verify', '--json', '--in', tempArchive(b.bytes)]);
        assertNoCrash(r, JSON.stringify(header));
        assert.ok(r.code === 0 || r.code === ExitCode.failure, describeRun(r));
        if (r.code !== 0) assert.match(r.stderr, WHERE, describeRun(r));
      }),
      fcParams(runs(0.01, 8)),
    );
  },
);

// ---------------------------------------------------------------------------
// Input hardening through the CLI (issue 5, part 5)

const URL = 'http://127.0.0.1:2379';

test('-e JSON: oversized, not JSON, not an object → exit 10; unknown fields are warned, not fatal', async () => {
  // Linux refuses a single argument over 128 KiB (MAX_ARG_STRLEN), so a
  // 1 MiB -e cannot even reach the CLI; the limit is checked in-process.
  const huge = JSON.stringify({ url: URL, junk: 'x'.repeat(1024 * 1024) });
  assert.throws(
    () => parseEndpointJson(huge),
    (err: unknown) => (err as { exitCode?: number }).exitCode === ExitCode.badEndpointJson && /bytes/.test((err as Error).message),
  );
  for (const bad of ['nope', '[1]', '"url"', 'null', '{"url":', '']) {
    const r = await runCli(['validate', '--offline', '-e', bad]);
    assert.equal(r.code, ExitCode.badEndpointJson, `-e ${JSON.stringify(bad)}\n${describeRun(r)}`);
    assertNoCrash(r, bad);
    assert.match(r.stderr, /JSON/);
  }
  // Large but under the argument limit, with unknown fields: a warning, and the run goes on.
  const big = JSON.stringify({ url: URL, bogus: 1, comment: 'y'.repeat(100 * 1024) });
  const r = await runCli(['validate', '--offline', '-e', big]);
  assert.equal(r.code, 0, describeRun(r));
  assert.match(r.stderr, /warning: .*unknown field.*bogus.*comment|warning: .*unknown field.*comment.*bogus/);
});

test('bad field values → a clear validation message naming the field, never a crash', async () => {
  const cases: { e: Record<string, unknown>; code: number; field: string; says: RegExp }[] = [
    { e: { url: 'http://a b:2379' }, code: ExitCode.failure, field: 'url', says: /white ?space/i },
    { e: { url: ' ' }, code: ExitCode.failure, field: 'url', says: /./ },
    { e: { url: 'http://127.0.0.1:2379,' }, code: ExitCode.failure, field: 'url', says: /empty/ },
    { e: { url: 'http://127.0.0.1:-5' }, code: ExitCode.failure, field: 'url', says: /./ },
    { e: { url: 'http://127.0.0.1:99999' }, code: ExitCode.failure, field: 'url', says: /port|host:port/ },
    { e: { url: URL, timeout: '99999999' }, code: ExitCode.failure, field: 'timeout', says: /more than \d+ s/ },
    { e: { url: URL, timeout: 1e308 }, code: ExitCode.failure, field: 'timeout', says: /./ },
    { e: { url: URL, timeout: -5 }, code: ExitCode.failure, field: 'timeout', says: /-5/ },
    { e: { url: URL, timeout: '-1' }, code: ExitCode.failure, field: 'timeout', says: /-1/ },
    { e: { url: URL, timeout: 0 }, code: ExitCode.failure, field: 'timeout', says: /more than zero/ },
    { e: { url: URL, auth: 'Role-Based Authentication', username: '', password: '' }, code: ExitCode.failure, field: 'username', says: /required/ },
    { e: { url: URL, auth: 'kerberos' }, code: ExitCode.failure, field: 'auth', says: /not one of/ },
    { e: { url: URL, overwrite: -1 }, code: ExitCode.failure, field: 'overwrite', says: /wrong type/ },
    { e: { url: -1 }, code: ExitCode.failure, field: 'url', says: /wrong type/ },
  ];
  for (const c of cases) {
    const r = await runCli(['validate', '--offline', '-e', JSON.stringify(c.e)]);
    const context = `validate -e ${JSON.stringify(c.e)}\n${describeRun(r)}`;
    assert.equal(r.code, c.code, context);
    assertNoCrash(r, context);
    const line = r.stdout.toString().split('\n').find((l) => l.startsWith('✗') && l.includes(` ${c.field} `));
    assert.ok(line, `${context}: no ✗ line for ${c.field}`);
    assert.match(line, c.says, context);
  }
  // Empty optional strings mean "not set"; the configuration is valid.
  const empty = await runCli(['validate', '--offline', '-e', JSON.stringify({ url: URL, timeout: '', prefix: '', auth: '', username: '' })]);
  assert.equal(empty.code, 0, describeRun(empty));

  // backup/restore use SHIELD's codes: 12 for a missing required field, 13 for a wrong type, 4 for a bad value.
  for (const [e, code] of [
    [{ url: '' }, ExitCode.missingField],
    [{}, ExitCode.missingField],
    [{ url: 5 }, ExitCode.wrongType],
    [{ url: URL, overwrite: 'maybe' }, ExitCode.wrongType],
    [{ url: URL, timeout: -5 }, ExitCode.failure],
    [{ url: 'http://a b:2379' }, ExitCode.failure],
  ] as const) {
    for (const verb of ['backup', 'restore']) {
      const r = await runCli([verb, '-e', JSON.stringify(e)], { input: '' });
      const context = `${verb} -e ${JSON.stringify(e)}\n${describeRun(r)}`;
      assert.equal(r.code, code, context);
      assertNoCrash(r, context);
      assert.equal(r.stdout.length, 0, `${context}: wrote to stdout`);
    }
  }
  // Negative and zero numbers for numeric flags are usage errors.
  for (const args of [
    ['restore', '--endpoints', URL, '--concurrency', '-1'],
    ['restore', '--endpoints', URL, '--batch-ops', '0'],
    ['restore', '--endpoints', URL, '--batch-bytes', '1.5'],
    ['backup', '--endpoints', URL, '--page-bytes', '-65536'],
  ]) {
    const r = await runCli(args, { input: '' });
    assert.equal(r.code, ExitCode.usage, `${args.join(' ')}\n${describeRun(r)}`);
    assert.match(r.stderr, /whole number above zero/, describeRun(r));
  }
});

// ---------------------------------------------------------------------------
// Mutated archives against a real etcd

interface Snapshot {
  revision: string;
  kvs: string[];
}

async function snapshot(client: Etcd3): Promise<Snapshot> {
  const r = await client.kv.range({ key: Buffer.from([0]), range_end: Buffer.from([0]) });
  return {
    revision: r.header.revision,
    kvs: r.kvs.map((kv) => `${kv.key.toString('hex')}=${kv.value.toString('hex')} mod=${kv.mod_revision} lease=${kv.lease}`),
  };
}

async function contents(client: Etcd3): Promise<string[]> {
  const r = await client.kv.range({ key: Buffer.from([0]), range_end: Buffer.from([0]) });
  return r.kvs.map((kv) => `${kv.key.toString('hex')}=${kv.value.toString('hex')}`);
}

const hexPairs = (rs: { key: Buffer; value: Buffer }[]) =>
  [...rs].sort((a, b) => Buffer.compare(a.key, b.key)).map((r) => `${r.key.toString('hex')}=${r.value.toString('hex')}`);

async function reseed(client: Etcd3, seed: { key: Buffer; value: Buffer }[]): Promise<void> {
  await client.kv.txn({
    compare: [],
    success: [
      { request_delete_range: { key: Buffer.from([0]), range_end: Buffer.from([0]) } },
      ...seed.map((r) => ({ request_put: { key: r.key, value: r.value } })),
    ],
    failure: [],
  });
}

test('mutated archives through `restore --overwrite`: a failed restore leaves the keyspace byte-identical', { timeout: 240_000 }, async () => {
  await withEtcd({}, async (cluster) => {
    const client = new Etcd3({ hosts: cluster.url });
    try {
      // The cluster holds some keys the archive lacks, some it changes, some it shares.
      const seed = Array.from({ length: 40 }, (_, i) => ({ key: Buffer.from(`/k/${String(i * 2).padStart(3, '0')}`), value: Buffer.from(`old-${i}`) }));
      const archiveRecords: KeyRecord[] = Array.from({ length: 30 }, (_, i) => ({
        key: Buffer.from(`/k/${String(i * 3).padStart(3, '0')}`),
        value: Buffer.from(i % 2 ? `new-${i}` : `old-${(i * 3) / 2}`),
        createRevision: '2',
        modRevision: String(3 + i),
        version: '1',
        lease: '0',
      }));
      const native = buildNative({
        header: { tool: 'fuzz', revision: '99', prefix: '', clusterId: '1', memberId: '1', createdAt: '2024-01-01T00:00:00Z' },
        records: archiveRecords,
        leases: [],
      });
      const legacy = buildLegacy({ records: [...archiveRecords].reverse() });
      await reseed(client, seed);

      const mutated = fc.oneof(
        { weight: 3, arbitrary: nativeMutation.map((m) => ({ name: `native: ${m.name}`, bytes: m.apply(native), native: true })) },
        { weight: 2, arbitrary: legacyMutation.map((m) => ({ name: `legacy: ${m.name}`, bytes: m.apply(legacy), native: false })) },
      );
      let failures = 0;
      let successes = 0;
      await fc.assert(
        fc.asyncProperty(mutated, fc.boolean(), async (c, viaStdin) => {
          const before = await snapshot(client);
          const file = tempArchive(c.bytes);
          const args = ['restore', '--endpoints', cluster.url, '--overwrite'];
          const r = viaStdin ? await runCli(args, { input: c.bytes }) : await runCli([...args, '--in', file]);
          const context = `${c.name} (${viaStdin ? 'stdin' : '--in'})\n${describeRun(r)}`;
          assertNoCrash(r, context);
          if (r.code !== 0) {
            failures++;
            assert.equal(r.code, ExitCode.failure, context);
            assert.deepEqual(await snapshot(client), before, `${context}\nthe failed restore changed the keyspace`);
            return;
          }
          successes++;
          const expected = c.native ? hexPairs(archiveRecords) : hexPairs(referenceLegacy(c.bytes) ?? []);
          assert.ok(c.native || referenceLegacy(c.bytes), `${context}: a malformed legacy archive was restored`);
          assert.deepEqual(await contents(client), expected, `${context}\nthe keyspace is not the archive's`);
          await reseed(client, seed);
        }),
        fcParams(runs(0.025, 10)),
      );
      assert.ok(failures > 0, 'no mutated archive was refused: the generator is broken');
      void successes;
    } finally {
      client.close();
    }
  });
});

test(
  'a legacy archive with a repeated key deep inside changes nothing in etcd',
  { timeout: 60_000 },
  async () => {
    await withEtcd({}, async (cluster) => {
      const client = new Etcd3({ hosts: cluster.url });
      try {
        await client.put('/keep').value('1');
        const records = Array.from({ length: 400 }, (_, i) => ({ key: Buffer.from(`/d/${String(i).padStart(4, '0')}`), value: Buffer.from(`v${i}`) })).reverse();
        const lines = records.map((r) => encodeLegacyLine(r.key, r.value));
        lines.splice(300, 0, lines[299]!);
        const before = await snapshot(client);
        const r = await runCli(['restore', '--endpoints', cluster.url, '--overwrite', '--in', tempArchive(Buffer.from(lines.join(''), 'latin1'))]);
        assert.equal(r.code, ExitCode.failure, describeRun(r));
        assertNoCrash(r, 'repeated key');
        assert.match(r.stderr, /line 30[01]\b/, describeRun(r));
        assert.deepEqual(await snapshot(client), before, 'the refused archive changed the keyspace');
      } finally {
        client.close();
      }
    });
  },
);
