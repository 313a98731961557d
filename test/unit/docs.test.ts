import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fieldsTable } from '../../scripts/fields-doc';
import { repoRoot as root } from '../cli';

test('the README field table is the one the schema generates (run `npm run docs` if not)', () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  assert.ok(readme.includes(fieldsTable()), 'README.md field table is stale: run `npm run docs`');
});
