// Fuzzing the archive readers (issue 5, parts 1, 5 and 6).
//
// In-process: valid archives are built with the real encoders, mutated (bit
// flips, truncation at every section boundary and at random offsets,
// duplicated, reordered and dropped frames, oversized lengths, wrong versions,
// garbage, legacy lines without the separator, ...) and read back through
// verifyArchive / scanArchive and the push decoders. Each must end in an
// ArchiveError whose message says where, or in exactly the original content.
//
// Against a real etcd, the same cases go through `etcd-shield restore
// --overwrite` in test/fuzz-restore.test.ts.
//
// Case count: about 2,000 by default; ETCD_SHIELD_FUZZ_RUNS=N scales the whole
// file to about N cases (ETCD_SHIELD_FUZZ_SEED=S replays a seed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import fc from 'fast-check';
import { NativeDecoder } from '../../src/archive/native-decode';
import { NativeEncoder } from '../../src/archive/native-encode';
import { MAX_FRAME_BYTES } from '../../src/archive/native-format';
import { encodeLegacyLine, LegacyDecoder } from '../../src/archive/legacy';
import { ExitCode } from '../../src/errors';
import { parseEndpointJson } from '../../src/shield/endpoint-json';
import { assertNoCrash, describeRun, runCli } from '../cli';
import { type NativeModel, WHERE, assertCleanArchiveError, buildLegacy, buildNative, decodeChunked, expectedNativeItems, fcParams, flips, garbageArb, int64, keyBytes, legacyModel, legacyMutation, looksNative, nativeModel, nativeMutation, plain, readBack, referenceLegacy, revisionStr, runs, tempArchive, tmp, trailerSha, valueBytes } from '../archive-fuzzing';

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
