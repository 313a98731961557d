/**
 * What the running service shows of itself: the HTTP API, the metrics and
 * the status page read only these shapes, never a job's configuration
 * objects, so no secret can reach them.
 */
import type { StoreListing } from '../api/catalogue';
import type { KeepRules } from '../catalogue/retention';

export type RunKind = 'backup' | 'verify';
export type RunTrigger = 'schedule' | 'api' | 'startup';
export type RunStatus = 'running' | 'succeeded' | 'failed' | 'skipped' | 'aborted';

export interface RunError {
  /** ERROR_KINDS key, e.g. connection, store. */
  kind: string;
  message: string;
  hint: string;
}

export interface RunView {
  id: string;
  job: string;
  kind: RunKind;
  trigger: RunTrigger;
  status: RunStatus;
  /** ISO 8601. */
  startedAt: string;
  finishedAt?: string;
  durationSeconds?: number;
  /** A backup run: what it stored. */
  backup?: string;
  keys?: number;
  leases?: number;
  /** int64, as a decimal string (as etcd and the manifest give it). */
  revision?: string;
  /** Bytes in the store (after compression and encryption). */
  bytes?: number;
  /** Bytes of the archive before compression. */
  archiveBytes?: number;
  /** Backups pruned after this run by the keep rules. */
  pruned?: number;
  /** A verify run: backups checked, and how many were damaged. */
  checked?: number;
  damaged?: number;
  /** A verify run: backups the job's identity could not decrypt (not checked; not counted as damaged). */
  undecrypted?: number;
  /** A skipped run: why (the job was still running). */
  reason?: string;
  error?: RunError;
}

/**
 * ok: the last backup succeeded and is not overdue; late: no success within
 * two periods, or never ran yet past its first tick; failing: the last
 * backup (or verify) failed; idle: nothing has run yet.
 */
export type JobHealth = 'ok' | 'late' | 'failing' | 'idle';

export interface JobView {
  name: string;
  /** The store URL as configured (never holds a secret: credentials come from the SDK chain). */
  store: string;
  prefix: string;
  /** logical (etcd-shield archives) or snapshot (etcd's own snapshots). */
  mode: 'logical' | 'snapshot';
  schedule: string;
  timezone: string;
  verify?: string;
  compress: string;
  encrypted: boolean;
  keep: KeepRules;
  /** ISO 8601; absent when this instance is a follower or the schedule never fires again. */
  nextRun?: string;
  nextVerify?: string;
  running: boolean;
  /** The run in progress, if any. */
  current?: RunView;
  health: JobHealth;
  lastRun?: RunView;
  lastSuccess?: RunView;
  /** Complete backups in the store, as last counted (after each run, and at start). */
  backupsKept?: number;
  /** The newest runs first, at most RUN_HISTORY. */
  runs: RunView[];
  changes?: ChangesView;
  /** Counters since the process started. */
  successes: number;
  failures: number;
  skips: number;
}

/** The job's change log (follow), when it has one. */
export interface ChangesView {
  flushSeconds: number;
  /** Whether the follower runs now (on the leader only). */
  running: boolean;
  /** The newest revision stored in the change log by this instance, and when it was seen. */
  coveredRevision?: string;
  coveredAt?: string;
  /** Seconds from coveredAt to now: how much a restore to "now" would miss. */
  lagSeconds?: number;
  segments: number;
  gaps: number;
  /** The last error that stopped the follower (it starts again after a pause). */
  error?: RunError;
}

export interface RoleView {
  /** Whether this instance runs the schedules: always true without `ha`. */
  leader: boolean;
  ha: boolean;
  /** This instance's id in the election (host:pid). */
  instance: string;
  /** The instance that leads now, as etcd last said; absent while unknown (e.g. etcd unreachable). */
  leaderInstance?: string;
  /** The election key, with ha. */
  election?: string;
}

export interface ReadyCheck {
  job: string;
  store: string;
  ok: boolean;
  error?: RunError;
}

/** Runs kept per job for the API and page. */
export const RUN_HISTORY = 50;

/** The running service, as its HTTP face sees it. */
export interface ServiceControl {
  role(): RoleView;
  jobs(): JobView[];
  job(name: string): JobView | undefined;
  run(id: string): RunView | undefined;
  /**
   * Starts a backup of the job now and returns its run at once.
   * Throws NotFoundError for an unknown job, JobBusyError when it is running (or this instance is a follower: then the error says so).
   */
  trigger(name: string): RunView;
  /** The job's catalogue, read from its store now. Throws NotFoundError for an unknown job. */
  backups(name: string, signal?: AbortSignal): Promise<StoreListing>;
  /** Each job's store, reached now. */
  ready(signal?: AbortSignal): Promise<ReadyCheck[]>;
  /** Whether the service is shutting down (readyz answers 503 then). */
  stopping(): boolean;
}
