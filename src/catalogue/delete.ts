import { NotFoundError, UsageError } from '../errors';
import type { StoredObject } from '../store/types';
import type { Catalogue } from './catalogue';
import { classifyKey, isBackupName } from './naming';

/** complete: listed; incomplete: an archive without a manifest; broken: a manifest that cannot be read, or whose archive is gone. */
export type DeletedKind = 'complete' | 'incomplete' | 'broken';

export interface DeletePlan {
  /** In the order asked, each with its objects, manifest first. */
  backups: { name: string; kind: DeletedKind; objects: StoredObject[] }[];
  /** Complete backups the store keeps. */
  remaining: number;
}

/**
 * The objects of each named backup, whatever state it is in, manifest
 * first: a delete stopped half-way leaves an incomplete archive (which
 * prune removes), never a listed backup without its archive. Unknown
 * names are refused before anything is deleted, and so is deleting every
 * complete backup, unless forced.
 */
export function planDelete(cat: Catalogue, objects: StoredObject[], names: string[], storeUrl: string, force = false): DeletePlan {
  const wanted = [...new Set(names)];
  if (!wanted.length) throw new UsageError('name the backups to delete', '`etcd-shield list --from URL` shows their names');
  const bad = wanted.find((n) => !isBackupName(n));
  if (bad !== undefined) {
    throw new UsageError(`${JSON.stringify(bad)} is not a backup name`, 'give names as `etcd-shield list --from URL` prints them, e.g. 2026-12-02T03-00-00Z-r123456-9f3a');
  }
  const complete = new Set(cat.backups.map((b) => b.name));
  const newest = cat.backups.at(-1)?.name;
  const backups = wanted.map((name) => {
    const own = objects.filter((o) => classifyKey(o.key)?.name === name);
    if (!own.length) {
      throw new NotFoundError(`${storeUrl} holds no backup named ${name}; nothing was deleted`, newest ? `\`etcd-shield list --from URL\` shows the names (the newest is ${newest})` : 'check the store URL; `etcd-shield list --from URL` shows what it holds');
    }
    const manifestFirst = own.sort((a, b) => rank(a) - rank(b));
    const kind: DeletedKind = complete.has(name) ? 'complete' : own.some((o) => rank(o) === 0) ? 'broken' : 'incomplete';
    return { name, kind, objects: manifestFirst };
  });
  const remaining = cat.backups.filter((b) => !wanted.includes(b.name)).length;
  if (remaining === 0 && backups.some((b) => b.kind === 'complete') && !force) {
    throw new UsageError(`that would delete every complete backup in ${storeUrl}; nothing was deleted`, 'add --force if that is what you mean (prune always keeps the newest)');
  }
  return { backups, remaining };
}

const rank = (o: StoredObject) => (classifyKey(o.key)?.role === 'manifest' ? 0 : 1);
