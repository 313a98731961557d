// Mutated archives through `etcd-shield restore --overwrite` against a real
// etcd: a failed restore must leave the keyspace byte-identical (the cases
// come from test/archive-fuzzing.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Etcd3 } from 'etcd3';
import { encodeLegacyLine } from '../src/archive/legacy';
import type { KeyRecord } from '../src/archive/types';
import { ExitCode } from '../src/errors';
import { assertNoCrash, describeRun, runCli } from './cli';
import { withEtcd } from './harness';
import { buildLegacy, buildNative, fcParams, legacyMutation, nativeMutation, referenceLegacy, runs, tempArchive } from './archive-fuzzing';

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
