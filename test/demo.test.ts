// The README's first command, as CI and a log see it: the demo runs to its
// end with its output in a pipe, and then prints no terminal escape codes.
import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { childEnv, repoRoot } from './cli';

test('scripts/demo.sh runs to the end and prints no escape codes into a pipe', { timeout: 300_000 }, async () => {
  const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const child = spawn('bash', ['scripts/demo.sh'], { cwd: repoRoot, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (b: Buffer) => (output += b.toString('utf8')));
    child.stderr.on('data', (b: Buffer) => (output += b.toString('utf8')));
    child.once('error', reject);
    child.once('close', (c) => resolve({ code: c, output }));
  });
  assert.equal(code, 0, `the demo failed:\n${output}`);
  assert.match(output, /demo finished/);
  assert.match(output, /identical: \d+ keys restored exactly/);
  assert.doesNotMatch(output, /\x1b/, `escape codes in piped output:\n${JSON.stringify(output.slice(0, 2000))}`);
});
