import { backupToStore } from '../api/backup-to-store';
import { listBackups, pruneStore } from '../api/catalogue';
import { verifyStore } from '../api/verify-store';
import { asShieldError, StoreError } from '../errors';
import type { ObjectStore } from '../store/types';
import type { ServiceJob } from './config';
import type { RunError, RunView } from './types';

export type RunOutcome = Partial<RunView>;

/**
 * One backup of a job: the archive into its store, then its keep rules.
 * A prune that fails after a good backup fails the run (the store may be
 * filling up, someone must look), saying the backup itself was stored.
 */
export async function backupJob(job: ServiceJob, store: ObjectStore, signal: AbortSignal, warn: (m: string) => void): Promise<{ outcome: RunOutcome; kept?: number }> {
  const stored = await backupToStore(job.etcd, store, { compression: job.compress, recipients: [...job.encryptTo], signal, onWarning: warn });
  const m = stored.manifest;
  const outcome: RunOutcome = { backup: stored.name, keys: m.keys, leases: m.leases, revision: m.revision, bytes: m.storedBytes, archiveBytes: m.archiveBytes };
  let kept: number | undefined;
  if (Object.values(job.keep).some((n) => n !== undefined)) {
    try {
      const report = await pruneStore(store, job.keep, { signal });
      outcome.pruned = report.decisions.filter((d) => !d.keep).length;
      // The prune just read the whole catalogue: what it keeps is the store's count, no second listing needed.
      kept = report.decisions.length - outcome.pruned;
    } catch (err) {
      const e = asShieldError(err);
      throw new StoreError(`backup ${stored.name} was stored, but applying the keep rules to ${store.url} failed: ${e.message}`, e.hint, { cause: err });
    }
  }
  return { outcome, kept };
}

/** Counts the complete backups in the job's store. */
export async function countBackups(store: ObjectStore, signal?: AbortSignal): Promise<{ count: number; newest?: Date }> {
  const cat = await listBackups(store, { signal });
  const newest = cat.backups.at(-1);
  return { count: cat.backups.length, newest: newest ? new Date(newest.manifest.takenAt) : undefined };
}

/**
 * Checks every stored backup end to end (download, decrypt, decompress,
 * verify, compare with its manifest). An encrypted store can only be
 * checked up to its age layer without an identity; the run says so.
 */
export async function verifyJob(store: ObjectStore, identities: string[], signal: AbortSignal): Promise<RunOutcome & { ok: boolean; firstError?: string }> {
  const report = await verifyStore(store, { all: true, identities, signal });
  // A backup the identity cannot open is a key problem, not damage: an alert on damage must not fire for it.
  const locked = report.checks.filter((c) => c.undecrypted);
  const damaged = report.checks.filter((c) => !c.ok && !c.undecrypted);
  const named = (c: (typeof report.checks)[number] | undefined) => c && `${c.backup.name}: ${c.error?.message}`;
  const problem = report.problems[0] && `${report.problems[0].key}: ${report.problems[0].message}`;
  return {
    checked: report.checks.length,
    damaged: damaged.length + report.problems.length,
    undecrypted: locked.length,
    ok: report.ok,
    // Damage first, then an unreadable manifest, then a backup the key did not open.
    firstError: named(damaged[0]) ?? problem ?? named(locked[0]),
  };
}

/** Why a verify run failed: damage (restore from a backup that passed), or an identity that opens none (fix identity_file). */
export function verifyRunError(counts: { checked?: number; damaged?: number; undecrypted?: number }, firstError?: string): RunError {
  const { checked = 0, damaged = 0, undecrypted = 0 } = counts;
  const keyHint = "set identity_file to the age identity of one of the job's recipients (encrypt_to)";
  if (damaged === 0) {
    return { kind: 'encryption', message: `${undecrypted} of ${checked} backups could not be decrypted with the job's identity_file, so they were not checked; first: ${firstError}`, hint: keyHint };
  }
  const also = undecrypted ? `, and ${undecrypted} could not be decrypted with the job's identity_file` : '';
  return {
    kind: 'archive',
    message: `${damaged} of ${checked} backups failed the check${also}; first: ${firstError}`,
    hint: `run \`etcd-shield verify --from STORE --all\` to see each one; restore from one that passed${undecrypted ? `; and ${keyHint}` : ''}`,
  };
}
