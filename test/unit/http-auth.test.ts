import { strict as assert } from 'node:assert';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ForbiddenError, UnauthenticatedError } from '../../src/errors';
import { checkRunAllowed, isLoopback } from '../../src/service/http/auth';
import { pageDir } from '../../src/service/http/page-routes';

const WHAT = 'POST /api/jobs/main/run';

test('with a token, a run needs it as a Bearer token: none is 401, another is 403', () => {
  assert.doesNotThrow(() => checkRunAllowed(WHAT, 'Bearer s3cret', '10.0.0.5', 's3cret'));
  assert.doesNotThrow(() => checkRunAllowed(WHAT, 'bearer s3cret', '127.0.0.1', 's3cret'));
  assert.throws(() => checkRunAllowed(WHAT, undefined, '127.0.0.1', 's3cret'), UnauthenticatedError);
  assert.throws(() => checkRunAllowed(WHAT, 'Basic czNjcmV0', '127.0.0.1', 's3cret'), UnauthenticatedError);
  for (const wrong of ['Bearer s3cre', 'Bearer s3cret2', 'Bearer S3CRET']) {
    assert.throws(
      () => checkRunAllowed(WHAT, wrong, '127.0.0.1', 's3cret'),
      (e: unknown) => e instanceof ForbiddenError && e.message.includes(WHAT) && !e.message.includes('s3cret') && !e.hint.includes('s3cret'),
    );
  }
});

test('without a token, a run is allowed from loopback only, and the refusal says to configure one', () => {
  for (const a of ['127.0.0.1', '127.3.4.5', '::1', '::ffff:127.0.0.1']) assert.doesNotThrow(() => checkRunAllowed(WHAT, undefined, a, undefined), a);
  for (const a of ['10.0.0.5', '::ffff:10.0.0.5', 'fe80::1', '0.0.0.0', undefined]) {
    assert.equal(isLoopback(a), false, String(a));
    assert.throws(() => checkRunAllowed(WHAT, 'Bearer anything', a, undefined), (e: unknown) => e instanceof ForbiddenError && /token_file or token_env/.test(e.hint));
  }
});

test('the status page files are found from the compiled code', () => {
  const dir = pageDir();
  for (const f of ['index.html', 'style.css', 'app.js']) assert.ok(existsSync(join(dir, f)), f);
});
