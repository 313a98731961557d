import { NotFoundError, UsageError } from '../errors';
import type { BackupEntry, Catalogue } from './catalogue';

export interface Selector {
  /** One backup by name. */
  name?: string;
  /** The newest backup taken at or before this time. */
  before?: Date;
}

/** The newest complete backup, or the one the selector names; a NotFoundError says what the store does hold. */
export function selectBackup(cat: Catalogue, sel: Selector, storeUrl: string): BackupEntry {
  if (sel.name !== undefined && sel.before !== undefined) throw new UsageError('give either --backup NAME or --before TIME, not both');
  const all = cat.backups;
  if (all.length === 0) {
    const extra = cat.incomplete.length ? ` (${cat.incomplete.length} incomplete archive${cat.incomplete.length === 1 ? '' : 's'} without a manifest are not backups)` : '';
    throw new NotFoundError(`${storeUrl} holds no complete backup${extra}`, 'check the store URL (each cluster and prefix has its own path), or take a backup with `etcd-shield backup --to URL`');
  }
  const newest = all[all.length - 1];
  if (sel.name !== undefined) {
    const hit = all.find((b) => b.name === sel.name);
    if (hit) return hit;
    const incomplete = cat.incomplete.some((o) => o.key.startsWith(`${sel.name}.`));
    throw new NotFoundError(
      incomplete
        ? `backup ${sel.name} in ${storeUrl} is incomplete (its archive has no manifest) and cannot be restored`
        : `${storeUrl} holds no backup named ${sel.name}; the newest is ${newest.name}`,
    );
  }
  if (sel.before !== undefined) {
    const at = sel.before.getTime();
    for (let i = all.length - 1; i >= 0; i--) if (all[i].takenAt.getTime() <= at) return all[i];
    throw new NotFoundError(`${storeUrl} holds no backup taken at or before ${sel.before.toISOString()}; the oldest is ${all[0].name} (${all[0].manifest.takenAt})`);
  }
  return newest;
}

/** Accepts ISO 8601 (2026-12-02T14:31:58Z, or a date alone as its midnight UTC); refuses anything else. */
export function parseTime(text: string, flag: string): Date {
  const t = /^\d{4}-\d{2}-\d{2}$/.test(text) ? `${text}T00:00:00Z` : text;
  const d = /^\d{4}-\d{2}-\d{2}T/.test(t) ? new Date(t) : new Date(Number.NaN);
  if (Number.isNaN(d.getTime())) throw new UsageError(`${flag} ${JSON.stringify(text)} is not a time`, `give an ISO 8601 time such as 2026-12-02T14:31:58Z`);
  return d;
}
