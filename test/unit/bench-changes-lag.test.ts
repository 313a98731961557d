// The change log benchmark's lag: how long the oldest write the log does not cover has waited at each sample.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lags } from '../../bench/changes';

test('lag is the wait of the oldest uncovered write, by revision, and 0 once all are covered', () => {
  // Acknowledged out of revision order, as concurrent puts are.
  const writes = [
    { revision: 11, atMs: 100 },
    { revision: 13, atMs: 150 },
    { revision: 12, atMs: 160 },
    { revision: 14, atMs: 400 },
  ];
  const samples = [
    { atMs: 50, covered: 10 }, // nothing written yet
    { atMs: 500, covered: 10 }, // none covered: the first put has waited 400 ms
    { atMs: 600, covered: 12 }, // 11 and 12 covered; 13 (acknowledged at 150) is the oldest left
    { atMs: 700, covered: 13 },
    { atMs: 800, covered: 14 },
  ];
  assert.deepEqual(lags(writes, samples), [0, 0.4, 0.45, 0.3, 0]);
});

test('a write acknowledged after the sample does not count', () => {
  assert.deepEqual(lags([{ revision: 5, atMs: 900 }], [{ atMs: 800, covered: 4 }]), [0]);
});
