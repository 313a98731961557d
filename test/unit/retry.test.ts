// The connection's retry policy on etcd's overload. Under "too many requests"
// a proposal that gets past the refusal can starve waiting for apply and come
// back as a timeout; giving up must still say what happened: the overload.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { resolveConfig } from '../../src/config/config';
import { connect } from '../../src/etcd/connect';

// No request reaches this address: the calls below are ours and fail as etcd would.
const conn = () => connect(resolveConfig({ url: 'http://127.0.0.1:1', timeout: '5' }).config, undefined, { attempts: 3 });

const refused = () => new Error('etcdserver: too many requests');
const timedOut = () => new Error('etcdserver: request timed out');

/** Runs `answers` in turn through the policy; returns how many were called and what it threw. */
async function giveUp(answers: (() => Error)[]): Promise<{ calls: number; thrown: unknown }> {
  const c = conn();
  let calls = 0;
  try {
    await c.retrying(async () => {
      throw answers[Math.min(calls++, answers.length - 1)]!();
    });
    assert.fail('the call never succeeds, yet the policy returned');
  } catch (thrown) {
    return { calls, thrown };
  } finally {
    c.close();
  }
}

test('refused as overloaded, then timed out waiting for apply: the give-up reports the overload', async () => {
  const { calls, thrown } = await giveUp([refused, refused, timedOut]);
  assert.equal(calls, 3, 'the policy did not run all three tries, so the timeout never came last');
  assert.match(String(thrown), /too many requests/);
});

test('a timeout with no overload before it is reported as the timeout', async () => {
  const { thrown } = await giveUp([timedOut]);
  assert.match(String(thrown), /request timed out/);
});

test('an overload to the last try is reported as the overload', async () => {
  const { calls, thrown } = await giveUp([refused]);
  assert.equal(calls, 3);
  assert.match(String(thrown), /too many requests/);
});
