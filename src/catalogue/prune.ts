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
  let removed = 0;
  const drop = async (key: string) => {
    await store.remove(key, signal);
    removed++;
    onRemoved?.(key);
  };
  for (const d of plan.decisions) {
    if (d.keep) continue;
    await drop(d.backup.manifestKey);
    await drop(d.backup.archive.key);
  }
  for (const o of plan.staleIncomplete) await drop(o.key);
  return removed;
}
