import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Set by scripts/bundle.js: the one-file build has no package.json beside it. */
declare const ETCD_SHIELD_PACKAGE: { version: string; author: string } | undefined;

// package.json is the one place the version is written; dist/src/ is two levels below it.
const pkg =
  typeof ETCD_SHIELD_PACKAGE === 'object'
    ? ETCD_SHIELD_PACKAGE
    : (JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string; author: string });

/** Running from dist/etcd-shield.js rather than dist/src/. */
export const BUNDLED = typeof ETCD_SHIELD_PACKAGE === 'object';

export const TOOL_NAME = 'etcd-shield';
export const TOOL_VERSION: string = pkg.version;
export const TOOL_AUTHOR: string = pkg.author;
