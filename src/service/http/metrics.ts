import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { JobView, RunView, ServiceControl } from '../types';

const JOB = ['job'] as const;

/**
 * The service's metrics, read from control.jobs() at each scrape, so they
 * can never drift from what the API shows. Process metrics keep their
 * standard names (process_*, nodejs_*): dashboards and alerts written for
 * any Node service then work unchanged.
 */
export function createMetrics(control: ServiceControl): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const perJob = (type: typeof Gauge | typeof Counter, name: string, help: string, value: (job: JobView) => number | undefined) => {
    const metric: Gauge | Counter = new type({
      name,
      help,
      labelNames: JOB,
      registers: [registry],
      collect() {
        // The service keeps the values, cumulative counts included; a counter has no set(), so start from zero each scrape.
        metric.reset();
        for (const job of control.jobs()) {
          const v = value(job);
          if (v === undefined) continue;
          if (metric instanceof Gauge) metric.set({ job: job.name }, v);
          else metric.inc({ job: job.name }, v);
        }
      },
    });
  };
  const gauge = (name: string, help: string, value: (job: JobView) => number | undefined) => perJob(Gauge, name, help, value);
  const counter = (name: string, help: string, value: (job: JobView) => number) => perJob(Counter, name, help, value);

  gauge('etcd_shield_last_success_timestamp_seconds', 'When the last successful backup finished (Unix time); 0 before the first', (j) =>
    j.lastSuccess?.finishedAt ? Date.parse(j.lastSuccess.finishedAt) / 1000 : 0,
  );
  gauge('etcd_shield_last_run_duration_seconds', 'How long the last finished backup run took, whatever its outcome', (j) => lastFinishedBackup(j)?.durationSeconds);
  gauge('etcd_shield_last_run_keys', 'Keys in the last successful backup', (j) => j.lastSuccess?.keys);
  gauge('etcd_shield_last_run_stored_bytes', 'Bytes the last successful backup takes in the store (compressed and encrypted)', (j) => j.lastSuccess?.bytes);
  gauge('etcd_shield_last_run_revision', 'The etcd revision of the last successful backup (exact below 2^53)', (j) => (j.lastSuccess?.revision === undefined ? undefined : Number(j.lastSuccess.revision)));
  gauge('etcd_shield_running', 'Whether a run of the job is in progress (1) or not (0)', (j) => (j.running ? 1 : 0));
  gauge('etcd_shield_backups_kept', 'Complete backups in the job\'s store, as last counted', (j) => j.backupsKept);
  counter('etcd_shield_backup_successes_total', 'Backups that succeeded since the process started', (j) => j.successes);
  counter('etcd_shield_backup_failures_total', 'Backups that failed since the process started', (j) => j.failures);
  counter('etcd_shield_backup_skips_total', 'Scheduled backups skipped since the process started because the job was still running', (j) => j.skips);
  // The change log (jobs with `changes`): how far back a restore to "now" would fall short.
  gauge('etcd_shield_changes_covered_timestamp_seconds', 'When the newest revision stored in the change log was seen (Unix time)', (j) => (j.changes?.coveredAt ? Date.parse(j.changes.coveredAt) / 1000 : undefined));
  gauge('etcd_shield_changes_lag_seconds', 'Seconds since the newest revision stored in the change log was seen: the recovery point', (j) => j.changes?.lagSeconds);
  gauge('etcd_shield_changes_following', 'Whether the job\'s change log is being followed here (1) or not (0)', (j) => (j.changes ? (j.changes.running ? 1 : 0) : undefined));
  counter('etcd_shield_changes_segments_total', 'Change segments stored since the process started', (j) => j.changes?.segments ?? 0);
  counter('etcd_shield_changes_gaps_total', 'Gaps in the change log found since the process started (etcd compacted past it)', (j) => j.changes?.gaps ?? 0);
  new Gauge({
    name: 'etcd_shield_leader',
    help: 'Whether this instance runs the schedules (1) or follows (0)',
    registers: [registry],
    collect() {
      this.set(control.role().leader ? 1 : 0);
    },
  });
  return registry;
}

/** The newest backup run that ended (not a verify, not a skip, not the one in progress). */
function lastFinishedBackup(job: JobView): RunView | undefined {
  return job.runs.find((r) => r.kind === 'backup' && r.status !== 'running' && r.status !== 'skipped' && r.durationSeconds !== undefined);
}
