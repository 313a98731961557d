import { createReadStream } from 'node:fs';
import { backup, restore, resolveConfig } from 'etcd-shield';

/** Copies the keys under /app/ from one cluster to another through an archive file, leases included. */
export async function copyApp(fromUrl: string, toUrl: string, file: string, signal?: AbortSignal) {
  const { config: source } = resolveConfig({ url: fromUrl, prefix: '/app/' });
  const taken = await backup(source, { file }, { signal }); // one revision; the file appears only when complete
  const { config: target } = resolveConfig({ url: toUrl, prefix: '/app/', overwrite: true });
  const done = await restore(target, createReadStream(file), { signal }); // verified whole before the first write
  return { revision: taken.revision, keys: taken.keys, written: done.written, deleted: done.deleted };
}
