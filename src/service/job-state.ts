import { randomBytes } from 'node:crypto';
import type { ShieldError } from '../errors';
import type { ServiceJob } from './config';
import { type JobHealth, type JobView, RUN_HISTORY, type RunKind, type RunTrigger, type RunView } from './types';

export function newRunId(job: string, at: Date): string {
  return `${job}-${at.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-${randomBytes(3).toString('hex')}`;
}

export function errorView(err: ShieldError): NonNullable<RunView['error']> {
  return { kind: err.kind, message: err.message, hint: err.hint };
}

/** What one job has done since the process started, plus what its store said at start. */
export class JobState {
  readonly runs: RunView[] = [];
  current: RunView | undefined;
  successes = 0;
  failures = 0;
  skips = 0;
  lastSuccess: RunView | undefined;
  /** When the newest backup was taken: from this process's runs, or from the store's catalogue at start. */
  lastSuccessAt: Date | undefined;
  backupsKept: number | undefined;

  constructor(
    readonly job: ServiceJob,
    private readonly startedAt: Date,
  ) {}

  begin(kind: RunKind, trigger: RunTrigger, now = new Date()): RunView {
    const run: RunView = { id: newRunId(this.job.name, now), job: this.job.name, kind, trigger, status: 'running', startedAt: now.toISOString() };
    this.current = run;
    this.remember(run);
    return run;
  }

  /** A tick that found the job still running. */
  skip(kind: RunKind, trigger: RunTrigger, reason: string, now = new Date()): RunView {
    const run: RunView = { id: newRunId(this.job.name, now), job: this.job.name, kind, trigger, status: 'skipped', startedAt: now.toISOString(), finishedAt: now.toISOString(), durationSeconds: 0, reason };
    this.skips++;
    this.remember(run);
    return run;
  }

  finish(run: RunView, outcome: Partial<RunView> & Pick<RunView, 'status'>, now = new Date()): RunView {
    Object.assign(run, outcome, { finishedAt: now.toISOString(), durationSeconds: (now.getTime() - Date.parse(run.startedAt)) / 1000 });
    if (this.current === run) this.current = undefined;
    if (run.kind === 'backup') {
      if (run.status === 'succeeded') {
        this.successes++;
        this.lastSuccess = run;
        this.lastSuccessAt = new Date(run.startedAt);
      } else if (run.status === 'failed' || run.status === 'aborted') this.failures++;
    } else if (run.status === 'failed') this.failures++;
    return run;
  }

  find(id: string): RunView | undefined {
    return this.runs.find((r) => r.id === id);
  }

  view(nextRun: Date | undefined, nextVerify: Date | undefined, now = new Date()): JobView {
    const j = this.job;
    const last = this.lastFinished();
    return {
      name: j.name,
      store: j.to,
      prefix: j.prefix,
      mode: j.etcd.mode ?? 'logical',
      schedule: j.schedule,
      timezone: j.timezone,
      verify: j.verify,
      compress: j.compress,
      encrypted: j.encryptTo.length > 0,
      keep: { ...j.keep },
      nextRun: nextRun?.toISOString(),
      nextVerify: nextVerify?.toISOString(),
      running: this.current !== undefined,
      current: this.current && { ...this.current },
      health: this.health(now),
      lastRun: last && { ...last },
      lastSuccess: this.lastSuccess && { ...this.lastSuccess },
      backupsKept: this.backupsKept,
      runs: this.runs.map((r) => ({ ...r })),
      successes: this.successes,
      failures: this.failures,
      skips: this.skips,
    };
  }

  /** A failed last run is red; no backup within two periods (or since start) is amber. */
  health(now = new Date()): JobHealth {
    const last = this.lastFinished();
    if (last && (last.status === 'failed' || last.status === 'aborted')) return 'failing';
    const period = periodMs(this.job, now);
    const since = this.lastSuccessAt ?? this.startedAt;
    if (period !== undefined && now.getTime() - since.getTime() > 2 * period) return 'late';
    return this.lastSuccessAt ? 'ok' : 'idle';
  }

  private lastFinished(): RunView | undefined {
    return this.runs.find((r) => r.status !== 'running' && r.status !== 'skipped');
  }

  private remember(run: RunView): void {
    this.runs.unshift(run);
    if (this.runs.length > RUN_HISTORY) this.runs.length = RUN_HISTORY;
  }
}

/** The time between two consecutive ticks of the job's schedule from now on. */
export function periodMs(job: ServiceJob, now = new Date()): number | undefined {
  const a = job.nextRun(now);
  const b = a && job.nextRun(a);
  return a && b ? b.getTime() - a.getTime() : undefined;
}
