// The key-order window that a restore from an etcd snapshot writes through:
// every record once, sorted within each window, in calls of bounded size,
// with records larger than the window and buffers reused between windows.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { recordRef } from '../../src/archive/keys';
import type { KeyRecord } from '../../src/archive/types';
import { KEY_ORDER_WINDOW_BYTES, KeyOrderWindow } from '../../src/restore/key-order';
import type { Put } from '../../src/restore/source';

const record = (key: string, value: Buffer, lease = '0'): KeyRecord => ({ key: Buffer.from(key, 'latin1'), value, createRevision: '1', modRevision: '1', version: '1', lease });

/** Feeds records as a reader does (flushing when full), and returns what onBatch saw, copied, call by call. */
async function through(records: KeyRecord[]): Promise<{ key: string; value: Buffer; lease: string }[][]> {
  const calls: { key: string; value: Buffer; lease: string }[][] = [];
  const w = new KeyOrderWindow(async (puts: Put[]) => {
    calls.push(puts.map((p) => ({ key: p.key.toString('latin1'), value: Buffer.from(p.value), lease: p.lease })));
    await new Promise((r) => setImmediate(r));
  });
  for (const r of records) {
    w.add(recordRef(r));
    if (w.full) await w.flush();
  }
  await w.flush();
  return calls;
}

test('records come out once each, in byte order within a window, a few at a time', async () => {
  // Revision order as in a snapshot: keys of 64 directories interleaved; binary and high bytes sort as bytes.
  const records = Array.from({ length: 5000 }, (_, i) => record(`/d${String(i % 64).padStart(2, '0')}/k${String(i).padStart(5, '0')}${i % 7 ? '' : '\xff\x00'}`, Buffer.alloc(100 + (i % 50), i % 251), i % 9 ? '0' : '42'));
  const calls = await through(records);
  assert.ok(calls.every((c) => c.length >= 1 && c.length <= 64), 'each call holds at most 64 records');
  const out = calls.flat();
  assert.equal(out.length, records.length);
  assert.deepEqual(new Set(out.map((p) => p.key)), new Set(records.map((r) => r.key.toString('latin1'))));
  const byKey = new Map(records.map((r) => [r.key.toString('latin1'), r]));
  for (const p of out) {
    assert.deepEqual(p.value, byKey.get(p.key)!.value, `the value of ${p.key}`);
    assert.equal(p.lease, byKey.get(p.key)!.lease);
  }
  // All 5000 fit in one window here (under 1 MB), so the whole output is sorted.
  assert.ok(5000 * 200 < KEY_ORDER_WINDOW_BYTES);
  for (let i = 1; i < out.length; i++) assert.ok(Buffer.compare(Buffer.from(out[i - 1]!.key, 'latin1'), Buffer.from(out[i]!.key, 'latin1')) < 0, `${out[i - 1]!.key} before ${out[i]!.key}`);
});

test('more than a window: each window is sorted on its own, and none is lost or repeated', async () => {
  const value = Buffer.alloc(64 * 1024, 'v');
  const n = Math.ceil((3 * KEY_ORDER_WINDOW_BYTES) / value.length);
  const records = Array.from({ length: n }, (_, i) => record(`/k${String(n - i).padStart(6, '0')}`, value));
  const out = (await through(records)).flat();
  assert.equal(new Set(out.map((p) => p.key)).size, n);
  const descents = out.filter((p, i) => i > 0 && out[i - 1]!.key > p.key).length;
  assert.ok(descents >= 2 && descents <= 4, `${descents} windows after the first`);
});

test('a value larger than the window is handed on whole, with the records around it', async () => {
  const big = Buffer.alloc(KEY_ORDER_WINDOW_BYTES + 12345, 'B');
  const records = [record('/c', Buffer.from('small c')), record('/b', big), record('/a', Buffer.from('small a'))];
  const out = (await through(records)).flat();
  assert.deepEqual(out.map((p) => p.key).sort(), ['/a', '/b', '/c']);
  assert.deepEqual(out.find((p) => p.key === '/b')!.value, big);
  assert.equal(out.find((p) => p.key === '/a')!.value.toString(), 'small a');
});

test('keys that all share a long prefix, one of them the prefix itself, sort as bytes, a record copied on its own included', async () => {
  const big = Buffer.alloc(KEY_ORDER_WINDOW_BYTES + 1, 'B');
  const keys = ['/shared/prefix/b', '/shared/prefix/', '/shared/prefix/a\xff', '/shared/prefix/a', '/shared/prefix/\x00', '/shared/prefix/ab'];
  const records = keys.map((k) => record(k, Buffer.from(k)));
  records.push(record('/shared/prefix/aa', big));
  const calls = await through(records);
  assert.equal(calls.length, 1, 'the record copied on its own ends the window, which is sorted as one');
  assert.deepEqual(
    calls[0]!.map((p) => p.key),
    [...keys, '/shared/prefix/aa'].sort((x, y) => Buffer.compare(Buffer.from(x, 'latin1'), Buffer.from(y, 'latin1'))),
  );
  assert.deepEqual(calls[0]!.find((p) => p.key === '/shared/prefix/aa')!.value, big);
});
