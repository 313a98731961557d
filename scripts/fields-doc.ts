import { readFileSync, writeFileSync } from 'node:fs';
import { FIELDS } from '../src/config/fields';

const START = '<!-- fields:start (generated from src/config/fields.ts by `npm run docs`) -->';
const END = '<!-- fields:end -->';

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The README's field table, from the schema, so docs cannot drift from the code. */
export function fieldsTable(): string {
  const rows = FIELDS.map((f) => {
    const flags = f.cli.flags.map((n) => `\`--${n}${f.cli.value ? ` <${f.cli.value}>` : ''}\``).join(', ');
    const type = f.enum ? `enum: ${f.enum.map((v) => `\`${v}\``).join(', ')}` : f.type;
    return `| \`${f.name}\`${f.required ? ' (required)' : ''} | ${type} | ${flags} | ${f.cli.env ? `\`${f.cli.env}\`` : ''} | ${f.default !== undefined ? `\`${f.default}\`` : ''} | ${cell(f.help)}${f.cli.help ? ` CLI: ${cell(f.cli.help)}` : ''} |`;
  });
  return [
    START,
    '| SHIELD field | type | CLI flag | environment | default | meaning |',
    '|---|---|---|---|---|---|',
    ...rows,
    END,
  ].join('\n');
}

/** Replaces the generated block in a markdown file; returns whether it changed. */
export function updateFieldsBlock(path: string): boolean {
  const text = readFileSync(path, 'utf8');
  const from = text.indexOf(START);
  const to = text.indexOf(END);
  if (from < 0 || to < 0) throw new Error(`${path} has no generated fields block`);
  const next = text.slice(0, from) + fieldsTable() + text.slice(to + END.length);
  if (next !== text) writeFileSync(path, next);
  return next !== text;
}

if (require.main === module) {
  const path = process.argv[2] ?? 'README.md';
  console.log(updateFieldsBlock(path) ? `${path}: field table updated` : `${path}: field table already current`);
}
