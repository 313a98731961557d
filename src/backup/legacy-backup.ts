import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeLegacyLine } from '../archive/legacy';
import type { Page } from '../etcd/pages';
import type { Sink } from '../io/sink';
import { withTempDir } from '../io/tempdir';
import type { BackupOptions, BackupSummary } from './types';

/**
 * The original plugin's format lists keys in descending order. etcd pages
 * ascend (a descending sorted range makes etcd 3.4 read the whole range for
 * every page), so each page is reversed into a spool file and the pages are
 * then copied out last to first: memory stays at one page.
 */
export async function writeLegacy(
  pages: AsyncIterable<Page>,
  sink: Sink,
  opts: BackupOptions,
): Promise<BackupSummary> {
  return withTempDir(async (dir) => {
    const spool = await open(join(dir, 'pages'), 'w+', 0o600);
    try {
      const chunks: { at: number; length: number }[] = [];
      let at = 0;
      let keys = 0;
      let revision = '';
      for await (const page of pages) {
        revision ||= page.revision;
        let text = '';
        for (let i = page.kvs.length - 1; i >= 0; i--) text += encodeLegacyLine(page.kvs.key(i), page.kvs.value(i));
        const buf = Buffer.from(text, 'latin1');
        await spool.write(buf, 0, buf.length, at);
        chunks.push({ at, length: buf.length });
        at += buf.length;
        keys += page.kvs.length;
        opts.onProgress?.(keys, page.total);
      }
      for (let i = chunks.length - 1; i >= 0; i--) {
        const { at: offset, length } = chunks[i]!;
        const buf = Buffer.allocUnsafe(length);
        await spool.read(buf, 0, length, offset);
        await sink.write(buf);
      }
      return { format: 'legacy' as const, revision, keys, leases: 0, bytes: sink.bytes };
    } finally {
      await spool.close();
    }
  });
}
