import { readFileSync } from 'node:fs';
import { join } from 'node:path';

// package.json is the one place the version is written; dist/src/ is two levels below it.
const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
  version: string;
  author: string;
};

export const TOOL_NAME = 'etcd-shield';
export const TOOL_VERSION: string = pkg.version;
export const TOOL_AUTHOR: string = pkg.author;
