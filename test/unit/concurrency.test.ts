// The limiter that backup's lease reads go through: never more than its
// limit at once, every call answered, and nothing new started after a stop.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CancelledError } from '../../src/errors';
import { limiter } from '../../src/util/concurrency';

test('a limiter keeps at most its limit of calls in flight and answers each', async () => {
  const run = limiter(3);
  let active = 0;
  let most = 0;
  const results = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      run(async () => {
        most = Math.max(most, ++active);
        await sleep(1 + (i % 4));
        active--;
        return i;
      }),
    ),
  );
  assert.deepEqual(results, Array.from({ length: 20 }, (_, i) => i));
  assert.equal(most, 3);
});

/** A limit of one whose first call fires the signal, then `waiters` more calls queued behind it. */
function stoppedWhileBusy(waiters: number): { first: Promise<string>; waiting: Promise<string>[]; started: () => number } {
  const stop = new AbortController();
  const run = limiter(1, stop.signal);
  let started = 0;
  const first = run(async () => {
    started++;
    stop.abort();
    await sleep(5);
    return 'first';
  });
  const waiting = Array.from({ length: waiters }, () =>
    run(async () => {
      started++;
      return 'waiter';
    }),
  );
  return { first, waiting, started: () => started };
}

test('after the signal, calls still waiting fail and never start', async () => {
  const { first, waiting, started } = stoppedWhileBusy(1);
  assert.equal(await first, 'first');
  await assert.rejects(waiting[0]!, CancelledError);
  assert.equal(started(), 1);
});

test('after the signal, every call still waiting fails, not only the first', async () => {
  const { first, waiting, started } = stoppedWhileBusy(3);
  assert.equal(await first, 'first');
  // A waiter that stayed asleep would leave its promise pending: give up after a while rather than hang.
  const outcomes = await Promise.race([Promise.allSettled(waiting), sleep(1000).then(() => 'some calls never settled' as const)]);
  assert.notEqual(outcomes, 'some calls never settled', 'a waiter woken after the signal did not wake the next');
  for (const o of outcomes as PromiseSettledResult<string>[]) {
    assert.equal(o.status, 'rejected');
    assert.ok((o as PromiseRejectedResult).reason instanceof CancelledError);
  }
  assert.equal(started(), 1);
});
