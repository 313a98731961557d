import { type Catalogue, readCatalogue } from '../catalogue/catalogue';
import type { Manifest } from '../catalogue/manifest';
import { type DeletePlan, planDelete } from '../catalogue/delete';
import { executePrune, planPrune, type PrunePlan, removeInOrder } from '../catalogue/prune';
import type { KeepRules } from '../catalogue/retention';
import { changeCatalogue, recoveryWindows, type RecoveryWindow, staleChanges } from '../changes/chain';
import { classifyKey } from '../catalogue/naming';
import { isGapKey, parseSegmentKey } from '../changes/naming';
import type { ObjectStore, StoredObject, UnfinishedWrite } from '../store/types';
import type { OperationOptions } from './options';
import { type StoreOptions, type StoreRef, withStore } from './store-ref';

export type { BackupEntry, Catalogue } from '../catalogue/catalogue';
export type { Manifest } from '../catalogue/manifest';
export type { KeepRules, RetentionDecision } from '../catalogue/retention';
export type { PrunePlan } from '../catalogue/prune';
export type { DeletePlan, DeletedKind } from '../catalogue/delete';

/** A catalogue as JSON (`list --json`, the service's API): manifests' public fields only, never a key or a value. */
export interface CatalogueJson {
  store: string;
  /** Oldest first. */
  backups: (Manifest & { storedAt: string })[];
  incomplete: { key: string; bytes: number; modified: string }[];
  /** Left by runs killed outright (a directory store's part files); prune removes them after a day. */
  unfinished: { id: string; key: string; bytes: number; modified: string }[];
  problems: { key: string; message: string }[];
  /** What restore --to-revision / --to-time can reach: from a backup through contiguous change segments. */
  windows: { fromRevision: number; fromTime: string; toRevision: number; toTime: string; backup: string }[];
  changes: { segments: number; bytes: number; gaps: string[] };
}

/** A store's backups plus its change log: segments, gap markers and the windows they make. */
export interface StoreListing extends Catalogue {
  store: string;
  /** Writes of our objects that killed runs left behind. */
  unfinished: UnfinishedWrite[];
  windows: RecoveryWindow[];
  changes: { segments: number; bytes: number; gaps: string[] };
}

export function catalogueJson(cat: StoreListing): CatalogueJson {
  return {
    store: cat.store,
    windows: cat.windows.map((w) => ({ ...w, fromTime: w.fromTime.toISOString(), toTime: w.toTime.toISOString() })),
    changes: cat.changes,
    backups: cat.backups.map((b) => ({ ...b.manifest, storedAt: b.archive.modified.toISOString() })),
    incomplete: cat.incomplete.map((o) => ({ key: o.key, bytes: o.size, modified: o.modified.toISOString() })),
    unfinished: cat.unfinished.map((w) => ({ id: w.id, key: w.key, bytes: w.size, modified: w.modified.toISOString() })),
    problems: cat.problems,
  };
}

/** The store's complete backups (oldest first), its incomplete archives, and unreadable manifests; reads manifests only. */
export async function listBackups(from: StoreRef, opts: StoreOptions & Pick<OperationOptions, 'signal'> = {}): Promise<StoreListing> {
  return withStore(from, opts, async (store) => {
    const objects = await store.list(opts.signal);
    const cat = await readCatalogue(store, opts.signal, objects);
    const changes = changeCatalogue(objects);
    return {
      store: store.url,
      ...cat,
      unfinished: await unfinishedWrites(store, opts.signal),
      windows: recoveryWindows(cat.backups, changes.segments),
      changes: { segments: changes.segments.length, bytes: changes.segments.reduce((n, s) => n + s.object.size, 0), gaps: changes.gaps.map((g) => g.key) },
    };
  });
}

/** Unfinished writes of backups and change-log objects only: a file of someone else's is not ours to remove. */
async function unfinishedWrites(store: ObjectStore, signal?: AbortSignal): Promise<UnfinishedWrite[]> {
  const ours = (key: string) => classifyKey(key) !== undefined || parseSegmentKey(key) !== undefined || isGapKey(key);
  return ((await store.unfinished?.(signal)) ?? []).filter((w) => ours(w.key));
}

export interface PruneOptions extends StoreOptions, Pick<OperationOptions, 'signal'> {
  /** Decide and report, delete nothing. */
  dryRun?: boolean;
  /** "Now", for the age of incomplete archives (default: the current time). */
  now?: Date;
  /** Called after each object is deleted. */
  onRemoved?: (key: string) => void;
}

export interface PruneReport extends PrunePlan {
  store: string;
  /** Objects deleted (0 on a dry run). */
  removed: number;
  /** Change segments and gap markers older than the oldest kept backup, which no kept backup needs. */
  changes: StoredObject[];
}

/**
 * Applies restic's keep rules to the store's complete backups, always
 * keeping the newest, and removes incomplete archives and killed runs'
 * unfinished writes older than a day, and the change segments older than
 * the oldest kept backup.
 * Unreadable manifests and what they describe are left alone.
 */
export async function pruneStore(from: StoreRef, rules: KeepRules, opts: PruneOptions = {}): Promise<PruneReport> {
  return withStore(from, opts, async (store) => {
    const objects = await store.list(opts.signal);
    const plan = planPrune(await readCatalogue(store, opts.signal, objects), rules, opts.now ?? new Date(), await unfinishedWrites(store, opts.signal));
    const kept = plan.decisions.filter((d) => d.keep).map((d) => Number(d.backup.manifest.revision));
    const changes = staleChanges(changeCatalogue(objects), kept);
    let removed = 0;
    if (!opts.dryRun) {
      removed = await executePrune(store, plan, opts.signal, opts.onRemoved);
      removed += await removeInOrder(store, changes.map((o) => o.key), opts.signal, opts.onRemoved);
    }
    return { store: store.url, ...plan, removed, changes };
  });
}

export interface DeleteOptions extends StoreOptions, Pick<OperationOptions, 'signal'> {
  /** Say what would go, delete nothing. */
  dryRun?: boolean;
  /** Also when it would leave the store without a complete backup. */
  force?: boolean;
  /** Called after each object is deleted. */
  onRemoved?: (key: string) => void;
}

export interface DeleteReport extends DeletePlan {
  store: string;
  /** Objects deleted (0 on a dry run). */
  removed: number;
}

/**
 * Deletes the named backups, each whole (manifest first, then its
 * archive), whether complete, incomplete or broken. Change segments are
 * left to prune, which removes those no kept backup needs.
 */
export async function deleteBackups(from: StoreRef, names: string[], opts: DeleteOptions = {}): Promise<DeleteReport> {
  return withStore(from, opts, async (store) => {
    const objects = await store.list(opts.signal);
    const plan = planDelete(await readCatalogue(store, opts.signal, objects), objects, names, store.url, opts.force);
    const keys = plan.backups.flatMap((b) => b.objects.map((o) => o.key));
    const removed = opts.dryRun ? 0 : await removeInOrder(store, keys, opts.signal, opts.onRemoved);
    return { store: store.url, ...plan, removed };
  });
}
