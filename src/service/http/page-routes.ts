import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';

const PAGE_FILES = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
} as const;

/** Only our own script and style; data reaches the page through fetch and textContent only. */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The status page: static files, read once at start from the package (src/service/http/page, shipped as they are). */
export function registerPageRoutes(app: FastifyInstance): void {
  const dir = pageDir();
  for (const [url, { file, type }] of Object.entries(PAGE_FILES)) {
    const body = readFileSync(join(dir, file));
    app.get(url, async (_req, reply) =>
      reply.header('content-type', type).header('content-security-policy', CSP).header('x-content-type-options', 'nosniff').header('cache-control', 'no-cache').send(body),
    );
  }
}

/** The page's files sit in the sources, which dist/ and an installed package both keep beside package.json. */
export function pageDir(from = __dirname): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'src', 'service', 'http', 'page');
    if (existsSync(join(dir, 'package.json')) && existsSync(join(candidate, 'index.html'))) return candidate;
    if (dirname(dir) === dir) throw new Error(`the status page's files (src/service/http/page) are not in the package above ${from}`);
  }
}
