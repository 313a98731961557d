// The one table of error kinds: every class the library exports is in it,
// the faces' exit codes follow it, and a restore that stopped part-way
// carries its counts and its cause's exit code.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import * as lib from 'etcd-shield';

const classes = (Object.values(lib) as unknown[]).filter(
  (v): v is new (...args: never[]) => lib.ShieldError => typeof v === 'function' && v.prototype instanceof lib.ShieldError,
);

function instance(C: new (...args: never[]) => lib.ShieldError): lib.ShieldError {
  if (C === (lib.RestoreInterruptedError as unknown)) return new lib.RestoreInterruptedError(new lib.EtcdError('boom'), 3, 0);
  if (C === (lib.UnexpectedError as unknown)) return new lib.UnexpectedError(new Error('boom'));
  return new (C as unknown as new (message: string) => lib.ShieldError)('boom');
}

test('every exported error class is one kind of the table, with an exit code, an HTTP status and a hint', () => {
  assert.ok(classes.length >= 18, `only ${classes.length} error classes exported`);
  const kinds = new Set<string>();
  for (const C of classes) {
    const e = instance(C);
    const row = lib.ERROR_KINDS[e.kind];
    assert.ok(row, `${C.name}: kind ${e.kind} is not in ERROR_KINDS`);
    kinds.add(e.kind);
    assert.ok(e.hint.length > 10, `${C.name} has no hint`);
    assert.ok(e.httpStatus >= 400 && e.httpStatus < 600, `${C.name}: HTTP ${e.httpStatus}`);
    if (!(e instanceof lib.RestoreInterruptedError)) {
      assert.equal(e.exitCode, row.exitCode, C.name);
      assert.equal(e.hint, row.hint, `${C.name} without a hint of its own takes the table's`);
    }
  }
  assert.deepEqual([...kinds].sort(), Object.keys(lib.ERROR_KINDS).sort(), 'a kind of the table has no class');
});

test("SHIELD's exit codes: usage 1, store actions 2, failures 4, bad -e 10, missing field 12, wrong type 13", () => {
  assert.equal(new lib.UsageError('x').exitCode, 1);
  assert.equal(new lib.UnsupportedActionError('x').exitCode, 2);
  assert.equal(new lib.ConnectionError('x').exitCode, 4);
  assert.equal(new lib.TlsError('x').exitCode, 4);
  assert.equal(new lib.ArchiveError('x').exitCode, 4);
  assert.equal(new lib.BadEndpointJsonError('x').exitCode, 10);
  assert.equal(new lib.MissingFieldError('x').exitCode, 12);
  assert.equal(new lib.WrongTypeError('x').exitCode, 13);
});

test('a thrower may give a more specific hint than the table', () => {
  assert.equal(new lib.AuthError('x', 'check the user named backup').hint, 'check the user named backup');
});

test('RestoreInterruptedError carries its counts and reports as its cause', () => {
  const cause = new lib.CancelledError('stopped by a signal');
  const e = new lib.RestoreInterruptedError(cause, 120, 7);
  assert.equal(e.written, 120);
  assert.equal(e.deleted, 7);
  assert.equal(e.error, cause);
  assert.equal(e.exitCode, cause.exitCode);
  assert.equal(e.httpStatus, cause.httpStatus);
  assert.match(e.message, /^stopped by a signal; restore stopped after writing at least 120 keys and deleting 7\b/);
  assert.match(e.hint, /running the same restore again converges/);
});

test('anything else becomes an UnexpectedError asking for --debug', () => {
  const e = lib.asShieldError(new TypeError('x is undefined'));
  assert.ok(e instanceof lib.UnexpectedError);
  assert.match(e.message, /unexpected error: x is undefined/);
  assert.match(e.hint, /--debug/);
  const ours = new lib.FileError('x');
  assert.equal(lib.asShieldError(ours), ours);
});
