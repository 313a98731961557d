import { UsageError } from '../errors';
import type { BackupEntry } from './catalogue';

/** How many of each to keep, as restic's `forget --keep-*`: 0 or absent keeps none by that rule. */
export interface KeepRules {
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
}

export const KEEP_RULES = ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const;
type Rule = (typeof KEEP_RULES)[number];

export interface RetentionDecision {
  backup: BackupEntry;
  keep: boolean;
  /** Why it is kept, e.g. "last 1/4", "daily 2026-12-01", "newest backup"; empty when it goes. */
  reasons: string[];
}

/**
 * Restic's rules, in UTC: walking from the newest backup back, each rule
 * keeps the newest backup of each of its periods (each backup, for
 * "last") until it has kept its count. A backup is kept if any rule keeps
 * it, and the newest is always kept. Returns decisions newest first.
 */
export function applyRetention(backups: readonly BackupEntry[], rules: KeepRules): RetentionDecision[] {
  const active = KEEP_RULES.filter((r) => (rules[r] ?? 0) > 0);
  if (active.length === 0) {
    // Refused rather than run: prune would delete every backup but the newest.
    throw new UsageError('no keep rule given: prune would delete every backup but the newest', `give at least one of ${KEEP_RULES.map((r) => `--keep-${r} N`).join(', ')}`);
  }
  for (const r of KEEP_RULES) {
    const n = rules[r];
    if (n !== undefined && (!Number.isInteger(n) || n < 0)) throw new UsageError(`--keep-${r} must be a whole number of 0 or more, not ${n}`);
  }
  const left = new Map<Rule, number>(active.map((r) => [r, rules[r] as number]));
  const lastPeriod = new Map<Rule, string>();
  const newestFirst = [...backups].sort((a, b) => b.takenAt.getTime() - a.takenAt.getTime() || b.name.localeCompare(a.name));

  return newestFirst.map((backup, i) => {
    const reasons: string[] = [];
    for (const rule of active) {
      const remaining = left.get(rule) as number;
      if (remaining === 0) continue;
      const period = periodOf(rule, backup.takenAt, backup.name);
      if (period === lastPeriod.get(rule)) continue;
      lastPeriod.set(rule, period);
      left.set(rule, remaining - 1);
      const n = rules[rule] as number;
      reasons.push(rule === 'last' ? `last ${n - remaining + 1}/${n}` : `${rule} ${period}`);
    }
    if (i === 0 && reasons.length === 0) reasons.push('newest backup');
    return { backup, keep: reasons.length > 0, reasons };
  });
}

/** The period a backup falls in for a rule: each backup is its own for "last". */
function periodOf(rule: Rule, t: Date, name: string): string {
  const iso = t.toISOString();
  switch (rule) {
    case 'last':
      return name;
    case 'hourly':
      return `${iso.slice(0, 13)}h`;
    case 'daily':
      return iso.slice(0, 10);
    case 'weekly':
      return isoWeek(t);
    case 'monthly':
      return iso.slice(0, 7);
    case 'yearly':
      return iso.slice(0, 4);
  }
}

/** ISO 8601 week, e.g. 2026-W49: weeks start on Monday and belong to the year of their Thursday. */
function isoWeek(t: Date): string {
  const d = new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), t.getUTCDate()));
  const day = d.getUTCDay() || 7;
  d.setUTCDate(d.getUTCDate() + 4 - day);
  const yearStart = Date.UTC(d.getUTCFullYear(), 0, 1);
  const week = Math.ceil(((d.getTime() - yearStart) / 86400000 + 1) / 7);
  return `${d.getUTCFullYear()}-W${String(week).padStart(2, '0')}`;
}
