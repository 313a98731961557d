// deploy/etcd-shield.service passes `systemd-analyze verify` (when systemd is installed).
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from './cli';
import { makeTestDir, removeTestDir } from './harness';

const ANALYZE = '/usr/bin/systemd-analyze';
const UNIT = join(repoRoot, 'deploy/etcd-shield.service');

test('the systemd unit verifies; it runs serve with the config, a dedicated user, secrets from a file, sandboxing', { skip: existsSync(ANALYZE) ? false : `${ANALYZE} is not installed (Debian package systemd)` }, async () => {
  const text = readFileSync(UNIT, 'utf8');
  const dir = makeTestDir();
  try {
    // etcd-shield is not installed at /usr/local/bin here: point ExecStart at a binary that exists, change nothing else.
    const copy = join(dir, 'etcd-shield.service');
    writeFileSync(copy, text.replace('ExecStart=/usr/local/bin/etcd-shield ', `ExecStart=${process.execPath} `));
    assert.notEqual(readFileSync(copy, 'utf8'), text, 'ExecStart was found and pointed elsewhere');
    const r = spawnSync(ANALYZE, ['verify', copy], { encoding: 'utf8', env: { ...process.env, SYSTEMD_LOG_COLOR: '0' } });
    assert.equal(r.status, 0, `systemd-analyze verify:\n${r.stderr}${r.stdout}`);
    assert.equal(r.stderr.trim(), '', r.stderr);
  } finally {
    await removeTestDir(dir);
  }
  for (const line of [
    'ExecStart=/usr/local/bin/etcd-shield serve --config /etc/etcd-shield/serve.yaml',
    'Restart=on-failure',
    'User=etcd-shield',
    'EnvironmentFile=-/etc/etcd-shield/env',
    'ProtectSystem=strict',
    'ProtectHome=yes',
    'PrivateTmp=yes',
    'NoNewPrivileges=yes',
    'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX',
    'KillSignal=SIGTERM',
  ]) {
    assert.ok(text.split('\n').includes(line), `the unit has ${line}`);
  }
  // Longer than the default 60 s shutdown grace, so backups may finish before SIGKILL.
  const stop = /^TimeoutStopSec=(\d+)s$/m.exec(text);
  assert.ok(stop && Number(stop[1]) > 60, 'TimeoutStopSec exceeds the 60 s grace');
});
