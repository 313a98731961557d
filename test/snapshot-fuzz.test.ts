// Mutated and truncated copies of a real etcd snapshot: read in process the
// two ways restore does, and through `restore --overwrite` against a real
// etcd. Never a crash or a hang; with etcd's sha256 trailer always refused;
// and a refused restore leaves etcd as it was.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import fc from 'fast-check';
import { Etcd3 } from 'etcd3';
import { scanArchive } from '../src/archive/read';
import { verifyArchive } from '../src/archive/verify';
import { ArchiveError, ExitCode } from '../src/errors';
import { assertNoCrash, describeRun, runCli } from './cli';
import { fcParams, runs } from './archive-fuzzing';
import { startEtcd, type EtcdCluster } from './harness';

let etcd: EtcdCluster;
let client: Etcd3;
let tmp: string;
/** The snapshot as etcdctl saved it, and without its trailer (a bare bbolt file, as a member's member/snap/db). */
let withTrailer: Buffer;
let bare: Buffer;
let cases = 0;

type Mutation = { kind: 'flip'; at: number; mask: number } | { kind: 'truncate'; at: number } | { kind: 'zero'; at: number; length: number };

const mutation = (size: number): fc.Arbitrary<Mutation[]> =>
  fc.array(
    fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(size - 1), mask: fc.integer({ min: 1, max: 255 }) }),
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat(size - 1) }),
      fc.record({ kind: fc.constant('zero' as const), at: fc.nat(size - 1), length: fc.integer({ min: 1, max: 64 }) }),
    ),
    { minLength: 1, maxLength: 3 },
  );

function apply(bytes: Buffer, ms: Mutation[]): Buffer {
  let out = Buffer.from(bytes);
  for (const m of ms) {
    if (m.at >= out.length) continue;
    if (m.kind === 'flip') out[m.at]! ^= m.mask;
    else if (m.kind === 'truncate') out = out.subarray(0, m.at);
    else out.fill(0, m.at, Math.min(out.length, m.at + m.length));
  }
  return out;
}

function write(bytes: Buffer): string {
  const file = path.join(tmp, `case-${cases++}.db`);
  fs.writeFileSync(file, bytes);
  return file;
}

/** verifyArchive, then (if it passed) a scan; any failure must be a one-line ArchiveError. */
async function readBack(bytes: Buffer, context: string): Promise<{ ok: boolean; error?: ArchiveError }> {
  const file = write(bytes);
  try {
    const verified = await verifyArchive(file);
    let records = 0;
    await scanArchive(file, () => undefined, undefined, () => records++);
    assert.equal(records, verified.records, `${context}: verify and scan disagree`);
    return { ok: true };
  } catch (err) {
    if (!(err instanceof ArchiveError)) assert.fail(`${context}: expected an ArchiveError, got ${err instanceof Error ? err.stack : String(err)}`);
    assert.ok(!err.message.includes('\n') && err.hint.length > 0, `${context}: ${err.message}`);
    return { ok: false, error: err };
  } finally {
    fs.rmSync(file, { force: true });
  }
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-shield-snapfuzz-'));
  etcd = await startEtcd();
  client = new Etcd3({ hosts: etcd.url });
  const lease = (await client.leaseClient.leaseGrant({ TTL: 3600, ID: '0' })).ID;
  for (let i = 0; i < 300; i++) await client.kv.put({ key: Buffer.from(`/f/${i}`), value: Buffer.from(`v${i}`), ...(i % 10 ? {} : { lease }) });
  await client.kv.put({ key: Buffer.from('/f/large'), value: randomBytes(20_000) });
  for (let i = 0; i < 50; i += 3) await client.delete().key(`/f/${i}`);
  await client.kv.compact({ revision: (await client.kv.range({ key: Buffer.from('x') })).header.revision, physical: true });
  for (let i = 0; i < 20; i++) await client.put('/f/1').value(`again ${i}`);
  const file = path.join(tmp, 'source.db');
  const saved = await etcd.etcdctl(['snapshot', 'save', file]);
  assert.equal(saved.code, 0, saved.stderr);
  withTrailer = fs.readFileSync(file);
  bare = withTrailer.subarray(0, withTrailer.length - 32);
  assert.equal((await readBack(withTrailer, 'the intact snapshot')).ok, true);
  assert.equal((await readBack(bare, 'the intact snapshot without trailer')).ok, true);
});

after(async () => {
  client?.close();
  await etcd?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('with the sha256 trailer, every mutation is refused', { timeout: 300_000 }, async () => {
  await fc.assert(
    fc.asyncProperty(mutation(withTrailer.length), async (ms) => {
      const bytes = apply(withTrailer, ms);
      // Cut exactly at the trailer, it is a bare database: the next property's case.
      if (bytes.equals(withTrailer) || bytes.length === bare.length) return;
      const r = await readBack(bytes, JSON.stringify(ms));
      assert.equal(r.ok, false, `${JSON.stringify(ms)} was not refused`);
    }),
    fcParams(runs(0.1, 20)),
  );
});

test('without a trailer, a mutation is refused with an ArchiveError or read cleanly; never a crash or hang', { timeout: 300_000 }, async () => {
  let refused = 0;
  await fc.assert(
    fc.asyncProperty(mutation(bare.length), async (ms) => {
      const r = await readBack(apply(bare, ms), JSON.stringify(ms));
      if (!r.ok) refused++;
    }),
    fcParams(runs(0.2, 40)),
  );
  assert.ok(refused > 0, 'no mutation was refused: the checks did not run');
});

test('mutated snapshots through `restore --overwrite`: a refused restore leaves etcd as it was', { timeout: 300_000 }, async () => {
  const state = async () => {
    const r = await client.kv.range({ key: Buffer.from([0]), range_end: Buffer.from([0]) });
    return { revision: r.header.revision, kvs: r.kvs.map((kv) => `${kv.key.toString('hex')}=${kv.value.toString('hex')}`) };
  };
  let refusedRuns = 0;
  await fc.assert(
    fc.asyncProperty(fc.boolean(), mutation(bare.length), async (trailer, ms) => {
      const bytes = apply(trailer ? withTrailer : bare, ms);
      const before = await state();
      const r = await runCli(['restore', '--endpoints', etcd.url, '--in', write(bytes), '--overwrite']);
      assertNoCrash(r, JSON.stringify(ms));
      assert.ok(r.code === 0 || r.code === ExitCode.failure, describeRun(r));
      if (r.code !== 0) {
        refusedRuns++;
        assert.deepEqual(await state(), before, `a refused restore changed etcd: ${describeRun(r)}`);
      }
    }),
    fcParams(runs(0.005, 8)),
  );
  assert.ok(refusedRuns > 0, 'no restore was refused: the checks did not run');
});
