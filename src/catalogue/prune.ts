import type { ObjectStore, StoredObject, UnfinishedWrite } from '../store/types';
import type { Catalogue } from './catalogue';
import { applyRetention, type KeepRules, type RetentionDecision } from './retention';

/** An archive without a manifest this old is a run that died, not one still writing. */
export const INCOMPLETE_AFTER_MS = 24 * 60 * 60 * 1000;

export interface PrunePlan {
  /** Newest first. */
  decisions: RetentionDecision[];
  /** Archives with no manifest, older than a day. */
  staleIncomplete: StoredObject[];
  /** Writes of killed runs (a directory's part files) not written to for a day. */
  staleUnfinished: UnfinishedWrite[];
}

/** `unfinished`: the store's unfinished writes of our objects (ObjectStore.unfinished). */
export function planPrune(cat: Catalogue, rules: KeepRules, now: Date, unfinished: UnfinishedWrite[] = []): PrunePlan {
  const stale = (o: { modified: Date }) => now.getTime() - o.modified.getTime() > INCOMPLETE_AFTER_MS;
  return {
    decisions: applyRetention(cat.backups, rules),
    staleIncomplete: cat.incomplete.filter(stale),
    staleUnfinished: unfinished.filter(stale),
  };
}

/**
 * Deletes what the plan drops: each backup's manifest first, so that a
 * prune stopped half-way leaves an incomplete archive (removed by a later
 * prune), never a listed backup whose archive is gone.
 */
export async function executePrune(store: ObjectStore, plan: PrunePlan, signal?: AbortSignal, onRemoved?: (key: string) => void): Promise<number> {
  const dropped = plan.decisions.filter((d) => !d.keep).flatMap((d) => [d.backup.manifestKey, d.backup.archive.key]);
  const removed = await removeInOrder(store, [...dropped, ...plan.staleIncomplete.map((o) => o.key)], signal, onRemoved);
  for (const w of plan.staleUnfinished) {
    await store.discard?.(w, signal);
    onRemoved?.(w.id);
  }
  return removed + plan.staleUnfinished.length;
}

/** Removes the objects one at a time, in the order given (a manifest before its archive); returns how many. */
export async function removeInOrder(store: ObjectStore, keys: string[], signal?: AbortSignal, onRemoved?: (key: string) => void): Promise<number> {
  for (const key of keys) {
    await store.remove(key, signal);
    onRemoved?.(key);
  }
  return keys.length;
}
