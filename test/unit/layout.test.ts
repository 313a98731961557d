// The layout rules of docs/design.md, checked on the sources: no import
// cycles, no import from the core into a face, and a core that never
// prints, exits or reads the command line or the environment.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { repoRoot } from '../cli';

const FACES = /^src\/(cli|shield|service)\/|^src\/entry\.ts$/;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? sources(join(dir, d.name)) : d.name.endsWith('.ts') ? [join(dir, d.name)] : [],
  );
}

test('dependency-cruiser finds no import cycle and no core module importing a face', () => {
  const bin = join(repoRoot, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');
  let out: string;
  try {
    out = execFileSync(process.execPath, [bin, 'src', '--config', '.dependency-cruiser.cjs', '--output-type', 'err'], { cwd: repoRoot, encoding: 'utf8' });
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    assert.fail(`import rules broken:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
  assert.match(out, /no dependency violations found \((\d+) modules/);
  assert.ok(Number(/\((\d+) modules/.exec(out)![1]) > 50, `dependency-cruiser read too few modules to mean anything:\n${out}`);
});

test('the core never prints, exits, or reads argv, the environment or stdin', () => {
  const forbidden = /\bprocess\.(argv|env|exit|exitCode|stdout|stderr|stdin)\b|\bconsole\./;
  const core = sources(join(repoRoot, 'src'))
    .map((f) => relative(repoRoot, f))
    .filter((f) => !FACES.test(f));
  assert.ok(core.length > 40, `only ${core.length} core files found`);
  const offenders = core.flatMap((f) =>
    readFileSync(join(repoRoot, f), 'utf8')
      .split('\n')
      .map((line, i) => ({ line, at: `${f}:${i + 1}` }))
      .filter(({ line }) => !/^\s*(\/\/|\*|\/\*)/.test(line) && forbidden.test(line))
      .map(({ line, at }) => `${at}: ${line.trim()}`),
  );
  assert.deepEqual(offenders, [], 'the core must leave printing, exiting, argv and env to the faces');
});
