import type { ObjectStore, StoredObject } from '../store/types';
import type { Catalogue } from './catalogue';
import { applyRetention, type KeepRules, type RetentionDecision } from './retention';

/** An archive without a manifest this old is a run that died, not one still writing. */
export const INCOMPLETE_AFTER_MS = 24 * 60 * 60 * 1000;

export interface PrunePlan {
  /** Newest first. */
  decisions: RetentionDecision[];
  /** Archives with no manifest, older than a day. */
  staleIncomplete: StoredObject[];
}

export function planPrune(cat: Catalogue, rules: KeepRules, now: Date): PrunePlan {
  return {
    decisions: applyRetention(cat.backups, rules),
    staleIncomplete: cat.incomplete.filter((o) => now.getTime() - o.modified.getTime() > INCOMPLETE_AFTER_MS),
  };
}

/**
 * Deletes what the plan drops: each backup's manifest first, so that a
 * prune stopped half-way leaves an incomplete archive (removed by a later
 * prune), never a listed backup whose archive is gone.
 */
export async function executePrune(store: ObjectStore, plan: PrunePlan, signal?: AbortSignal, onRemoved?: (key: string) => void): Promise<number> {
  const dropped = plan.decisions.filter((d) => !d.keep).flatMap((d) => [d.backup.manifestKey, d.backup.archive.key]);
  return removeInOrder(store, [...dropped, ...plan.staleIncomplete.map((o) => o.key)], signal, onRemoved);
}

/** Removes the objects one at a time, in the order given (a manifest before its archive); returns how many. */
export async function removeInOrder(store: ObjectStore, keys: string[], signal?: AbortSignal, onRemoved?: (key: string) => void): Promise<number> {
  for (const key of keys) {
    await store.remove(key, signal);
    onRemoved?.(key);
  }
  return keys.length;
}
