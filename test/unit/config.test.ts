import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  checkFields,
  checkTypes,
  parseAuth,
  parseEndpoints,
  parseTimeout,
  resolveConfig,
  typeCheck,
} from '../../src/config/config';
import { MissingFieldError, WrongTypeError, ConfigError } from '../../src/errors';
import { restoreScope } from '../../src/restore/restore';
import { prefixRange } from '../../src/etcd/pages';
import { makeCerts, type CertSet } from '../certs';

describe('endpoints', () => {
  test('host:port, http and https, default port, trimming', () => {
    assert.deepEqual(parseEndpoints('127.0.0.1:2379, 127.0.0.1:22379'), {
      endpoints: ['http://127.0.0.1:2379', 'http://127.0.0.1:22379'],
      secure: false,
    });
    assert.deepEqual(parseEndpoints('https://localhost'), { endpoints: ['https://localhost:2379'], secure: true });
    assert.deepEqual(parseEndpoints('http://[::1]:2379/'), { endpoints: ['http://[::1]:2379'], secure: false });
  });
  test('bad lists say what is wrong', () => {
    assert.throws(() => parseEndpoints('http://a:1,https://b:2'), /mixes http/);
    assert.throws(() => parseEndpoints('a:1,,b:2'), /empty entry/);
    assert.throws(() => parseEndpoints('http://a b:1'), /white space/);
    assert.throws(() => parseEndpoints('ftp://a:1'), /not host:port/);
    assert.throws(() => parseEndpoints('a:99999'), /outside 1-65535/);
  });
});

describe('timeout and auth', () => {
  test('seconds and etcdctl durations', () => {
    assert.equal(parseTimeout('2'), 2000);
    assert.equal(parseTimeout('2.5'), 2500);
    assert.equal(parseTimeout('500ms'), 500);
    assert.equal(parseTimeout('1m'), 60_000);
    assert.throws(() => parseTimeout('0'), /more than zero/);
    assert.throws(() => parseTimeout('-1'), /more than zero/);
    assert.throws(() => parseTimeout('soon'), /not a number/);
    assert.throws(() => parseTimeout('99999'), /not for a whole backup/);
  });
  test('auth names, short names, and refusals', () => {
    assert.equal(parseAuth(''), 'none');
    assert.equal(parseAuth('Role-Based Authentication'), 'rbac');
    assert.equal(parseAuth('Certificate-Based Authentication'), 'cert');
    assert.equal(parseAuth('Both'), 'both');
    assert.equal(parseAuth('rbac'), 'rbac');
    assert.throws(() => parseAuth('Kerberos'), /is not one of/);
  });
});

describe('types: SHIELD exit codes 12 and 13', () => {
  test('missing url is 12, wrong types are 13', () => {
    assert.throws(() => typeCheck({}), MissingFieldError);
    assert.throws(() => typeCheck({ url: '' }), MissingFieldError);
    assert.throws(() => typeCheck({ url: 5 }), WrongTypeError);
    assert.throws(() => typeCheck({ url: 'a:1', overwrite: 'maybe' }), WrongTypeError);
    assert.throws(() => typeCheck({ url: 'a:1', prefix: ['x'] }), WrongTypeError);
  });
  test("SHIELD's boolean rules", () => {
    for (const v of [true, 1, 'y', 'YES', 't', 'true', 'On', '1']) assert.equal(typeCheck({ url: 'a:1', overwrite: v }).fields.overwrite, true, String(v));
    for (const v of [false, 0, 'n', 'No', 'f', 'FALSE', 'off', '', '0']) assert.equal(typeCheck({ url: 'a:1', overwrite: v }).fields.overwrite, false, String(v));
  });
  test('timeout as number or string; unknown keys reported, nulls ignored', () => {
    const r = checkTypes({ url: 'a:1', timeout: 5, colour: 'blue', prefix: null });
    assert.equal(r.fields.timeout, '5');
    assert.deepEqual(r.unknown, ['colour']);
    assert.equal(r.fields.prefix, undefined);
  });
});

describe('values', () => {
  let dir: string;
  let rsa: CertSet;
  let ec: CertSet;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'etcd-shield-config-test-'));
    rsa = await makeCerts(join(dir, 'rsa'), { keyType: 'rsa' });
    ec = await makeCerts(join(dir, 'ec'), { keyType: 'ec', pkcs8: true });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('no auth: a usable config, one line per field, in schema order', () => {
    const { checks, config } = checkFields({ url: 'http://127.0.0.1:2379', prefix: '/app' });
    assert.ok(config);
    assert.deepEqual(config.endpoints, ['http://127.0.0.1:2379']);
    assert.equal(config.timeoutMs, 2000);
    assert.equal(config.prefix, '/app');
    assert.deepEqual(
      checks.map((c) => c.field),
      ['url', 'timeout', 'auth', 'username', 'password', 'client_cert', 'client_key', 'ca_cert', 'insecure_skip_verify', 'overwrite', 'prefix', 'mode'],
    );
    assert.equal(config.mode, 'logical');
  });

  test('mode: logical by default, snapshot only without a prefix, nothing else', () => {
    assert.equal(checkFields({ url: 'a:1', mode: 'snapshot' }).config?.mode, 'snapshot');
    assert.equal(checkFields({ url: 'a:1', mode: 'Logical' }).config?.mode, 'logical');
    const prefixed = checkFields({ url: 'a:1', mode: 'snapshot', prefix: '/app' });
    assert.equal(prefixed.config, undefined);
    assert.match(prefixed.checks.find((c) => c.field === 'prefix' && !c.ok)!.message, /must be empty in snapshot mode/);
    const bad = checkFields({ url: 'a:1', mode: 'physical' });
    assert.equal(bad.config, undefined);
    assert.match(bad.checks.find((c) => c.field === 'mode')!.message, /"physical" is not one of: logical, snapshot/);
  });

  test('RBAC needs user and password; the password is never shown', () => {
    const missing = checkFields({ url: 'a:1', auth: 'Role-Based Authentication', username: 'bob' });
    assert.equal(missing.config, undefined);
    assert.match(missing.checks.find((c) => c.field === 'password')!.message, /required/);
    const ok = checkFields({ url: 'a:1', auth: 'Role-Based Authentication', username: 'bob', password: 's3cr3t-pw' });
    assert.ok(ok.config);
    assert.ok(!JSON.stringify(ok.checks).includes('s3cr3t-pw'));
  });

  test('certificates: RSA and EC (PKCS#8) parse; key contents never shown', () => {
    for (const set of [rsa, ec]) {
      const r = checkFields({
        url: 'https://127.0.0.1:2379',
        auth: 'Certificate-Based Authentication',
        client_cert: set.clientCertPem,
        client_key: set.clientKeyPem,
        ca_cert: set.caCertPem,
      });
      assert.ok(r.config, JSON.stringify(r.checks));
      const body = set.clientKeyPem.split('\n')[1]!;
      assert.ok(!JSON.stringify(r.checks).includes(body));
    }
  });

  test('certificate problems are named', () => {
    const base = { url: 'https://127.0.0.1:2379', auth: 'Certificate-Based Authentication' };
    const wrongKey = checkFields({ ...base, client_cert: rsa.clientCertPem, client_key: ec.clientKeyPem });
    assert.match(wrongKey.checks.find((c) => c.field === 'client_key')!.message, /does not belong/);
    const notPem = checkFields({ ...base, client_cert: 'hello', client_key: rsa.clientKeyPem });
    assert.match(notPem.checks.find((c) => c.field === 'client_cert')!.message, /not a PEM certificate/);
    const noCert = checkFields({ ...base, client_key: rsa.clientKeyPem });
    assert.match(noCert.checks.find((c) => c.field === 'client_cert')!.message, /required/);
    const http = checkFields({ ...base, url: 'http://127.0.0.1:2379', client_cert: rsa.clientCertPem, client_key: rsa.clientKeyPem });
    assert.match(http.checks.find((c) => c.field === 'url')!.message, /needs https/);
    const later = checkFields({ ...base, client_cert: rsa.clientCertPem, client_key: rsa.clientKeyPem }, new Date('2200-01-01'));
    assert.match(later.checks.find((c) => c.field === 'client_cert')!.message, /expired/);
  });

  test('resolveConfig names every bad field in one ConfigError', () => {
    assert.throws(() => resolveConfig({ url: 'a:1', timeout: 'soon', auth: 'Kerberos' }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /"timeout"/);
      assert.match(err.message, /"auth"/);
      return true;
    });
  });
});

describe('prefixes', () => {
  test('prefixRange covers exactly the keys with the prefix', () => {
    assert.deepEqual(prefixRange('/app'), { key: Buffer.from('/app'), range_end: Buffer.from('/apq') });
    // Prefixes are UTF-8: 'ÿ' is c3 bf, so the range ends at c3 c0.
    assert.deepEqual(prefixRange('a\u00ff'), { key: Buffer.from([0x61, 0xc3, 0xbf]), range_end: Buffer.from([0x61, 0xc3, 0xc0]) });
    assert.deepEqual(prefixRange(''), { key: Buffer.from([0]), range_end: Buffer.from([0]) });
  });
  test('restore scope is the more specific prefix; disjoint prefixes are refused', () => {
    assert.equal(restoreScope('', ''), '');
    assert.equal(restoreScope('', '/config'), '/config');
    assert.equal(restoreScope('/config/a', '/config'), '/config/a');
    assert.throws(() => restoreScope('/other', '/config'), ConfigError);
  });
});
