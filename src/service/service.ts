import { Cron } from 'croner';
import { listBackups, type StoreListing } from '../api/catalogue';
import { asShieldError, CancelledError, ConfigError, JobBusyError, NotFoundError, ShieldError } from '../errors';
import { makeDirectory } from '../io/make-directory';
import { readIdentityFile } from '../pipeline/encryption';
import { openStore, type S3Settings } from '../store/open';
import type { ObjectStore } from '../store/types';
import type { ServiceConfig, ServiceJob } from './config';
import { JobChangeLog } from './change-log';
import { backupJob, countBackups, verifyJob, verifyRunError } from './job-runner';
import { errorView, JobState, periodMs } from './job-state';
import type { Logger } from './log';
import type { Role } from './role';
import type { JobView, ReadyCheck, RoleView, RunKind, RunTrigger, RunView, ServiceControl } from './types';

export interface ServiceOptions {
  logger: Logger;
  role: Role;
  /** How to reach S3-compatible stores (endpoint, path style, CA); credentials come from the AWS SDK's chain. */
  s3?: S3Settings;
}

interface Entry {
  job: ServiceJob;
  state: JobState;
  store: ObjectStore;
  identities: string[];
  crons: Cron[];
  changes?: JobChangeLog;
  abort?: AbortController;
  done?: Promise<void>;
}

/** How long readiness waits for a store before calling it down. */
const READY_TIMEOUT_MS = 5000;

/**
 * The running service: one schedule per job (and one per verify), at most
 * one run per job at a time, runs only while this instance leads. What it
 * shows of itself goes through ServiceControl's views, never the config.
 */
export class Service implements ServiceControl {
  readonly #entries = new Map<string, Entry>();
  readonly #log: Logger;
  readonly #role: Role;
  #leader = false;
  #stopping = false;

  private constructor(opts: ServiceOptions) {
    this.#log = opts.logger;
    this.#role = opts.role;
  }

  /**
   * Opens each job's store, reads its identities and what the store holds,
   * then starts the schedules (paused until this instance leads). A store
   * that is down at start is logged, not fatal: its job fails at its tick.
   */
  static async start(config: ServiceConfig, opts: ServiceOptions): Promise<Service> {
    const service = new Service(opts);
    const started = new Date();
    for (const job of config.jobs) {
      const identities = job.identityFile ? await readIdentities(job) : [];
      // A directory store that does not exist yet is made now, so readiness and listing work before the first backup.
      const where = job.store;
      if (where.kind === 'dir') {
        await makeDirectory(where.path).catch((err: Error) => opts.logger.warn({ event: 'store', job: job.name }, `job "${job.name}": cannot create the directory ${where.path}: ${err.message}`));
      }
      const store = openStore(where.kind === 'dir' ? where.path : job.to, { cwd: '/', s3: opts.s3 });
      const entry: Entry = { job, state: new JobState(job, started), store, identities, crons: [] };
      if (job.changes) entry.changes = new JobChangeLog(job, store, opts.logger, job.changes.flushSeconds);
      service.#entries.set(job.name, entry);
    }
    await Promise.all([...service.#entries.values()].map((e) => service.#recount(e, 'start')));
    for (const entry of service.#entries.values()) service.#schedule(entry);
    await opts.role.start((leader) => service.#onRole(leader));
    return service;
  }

  role(): RoleView {
    return this.#role.view();
  }

  jobs(): JobView[] {
    return [...this.#entries.values()].map((e) => this.#view(e));
  }

  job(name: string): JobView | undefined {
    const e = this.#entries.get(name);
    return e && this.#view(e);
  }

  run(id: string): RunView | undefined {
    for (const e of this.#entries.values()) {
      const r = e.state.find(id);
      if (r) return { ...r };
    }
    return undefined;
  }

  trigger(name: string): RunView {
    const e = this.#entry(name);
    if (this.#stopping) throw new JobBusyError(`the service is shutting down; job "${name}" takes no new run`, 'start the run on another instance, or after the restart');
    if (!this.#leading()) {
      const leader = this.#role.view().leaderInstance;
      throw new JobBusyError(`this instance is a follower; only the leader${leader ? ` (${leader})` : ''} runs backups`, 'send the request to the leader: GET /api/jobs says which instance leads');
    }
    if (e.state.current) throw new JobBusyError(`job "${name}" is already running (run ${e.state.current.id}, since ${e.state.current.startedAt})`, `wait for it: GET /api/runs/${e.state.current.id}`);
    return { ...this.#start(e, 'backup', 'api') };
  }

  async backups(name: string, signal?: AbortSignal): Promise<StoreListing> {
    const e = this.#entry(name);
    return listBackups(e.store, { signal });
  }

  async ready(signal?: AbortSignal): Promise<ReadyCheck[]> {
    return Promise.all(
      [...this.#entries.values()].map(async (e): Promise<ReadyCheck> => {
        const timeout = AbortSignal.timeout(READY_TIMEOUT_MS);
        try {
          await e.store.list(signal ? AbortSignal.any([signal, timeout]) : timeout);
          return { job: e.job.name, store: e.job.to, ok: true };
        } catch (err) {
          const error = timeout.aborted ? { kind: 'store', message: `store ${e.job.to} did not answer within ${READY_TIMEOUT_MS / 1000} s`, hint: 'check that the store is up and reachable from this host' } : errorView(asShieldError(err));
          return { job: e.job.name, store: e.job.to, ok: false, error };
        }
      }),
    );
  }

  stopping(): boolean {
    return this.#stopping;
  }

  /**
   * Stops the schedules, lets running work finish for up to graceMs, then
   * aborts it (an aborted backup leaves no backup and no partial object),
   * resigns and closes the stores.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.#stopping = true;
    for (const e of this.#entries.values()) for (const c of e.crons) c.stop();
    // Followers store their open segment and end at once; backups get the grace period.
    const followers = Promise.all([...this.#entries.values()].map((e) => e.changes?.stop()));
    const running = this.#running();
    if (running.length) {
      this.#log.info({ event: 'shutdown', running: running.map((e) => e.job.name), graceSeconds: graceMs / 1000 }, `waiting up to ${graceMs / 1000} s for ${running.length} running job(s) to finish`);
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<boolean>((res) => (timer = setTimeout(() => res(true), graceMs)));
      const finished = Promise.all(running.map((e) => e.done)).then(() => false);
      if (await Promise.race([finished, expired])) {
        this.#log.warn({ event: 'shutdown' }, `grace period of ${graceMs / 1000} s is over: aborting what still runs`);
        this.abortRuns();
      }
      clearTimeout(timer);
      await Promise.all(running.map((e) => e.done));
    }
    await followers;
    await this.#role.stop().catch((err) => this.#log.warn({ event: 'resign', err: asShieldError(err).message }, 'could not resign from the election'));
    for (const e of this.#entries.values()) e.store.close();
  }

  /** Aborts every run now (a second signal): each cleans up its upload and is recorded as aborted. */
  abortRuns(): void {
    for (const e of this.#running()) e.abort?.abort(new Error('stopped'));
  }

  /** Leads now: told so by the role, and its lease not in doubt (the role knows that first: a tick can fire before its step-down does). */
  #leading(): boolean {
    return this.#leader && this.#role.isLeader();
  }

  #running(): Entry[] {
    return [...this.#entries.values()].filter((e) => e.done);
  }

  #entry(name: string): Entry {
    const e = this.#entries.get(name);
    if (!e) throw new NotFoundError(`no job named "${name}"; this service runs ${[...this.#entries.keys()].map((n) => `"${n}"`).join(', ')}`, 'GET /api/jobs lists the jobs');
    return e;
  }

  #view(e: Entry): JobView {
    const lead = this.#leader && !this.#stopping;
    const [backup, verify] = e.crons;
    const view = e.state.view(lead ? (backup?.nextRun() ?? undefined) : undefined, lead ? (verify?.nextRun() ?? undefined) : undefined);
    if (e.changes) view.changes = e.changes.view();
    return view;
  }

  #schedule(e: Entry): void {
    const { job } = e;
    const tick = (kind: RunKind) => () => this.#tick(e, kind);
    e.crons.push(new Cron(job.schedule, { timezone: job.timezone, paused: true }, tick('backup')));
    if (job.verify) e.crons.push(new Cron(job.verify, { timezone: job.timezone, paused: true }, tick('verify')));
  }

  #onRole(leader: boolean): void {
    if (leader === this.#leader) return;
    this.#leader = leader;
    const role = this.#role.view();
    this.#log.info({ event: 'role', leader, instance: role.instance }, leader ? 'this instance leads: schedules run here' : 'this instance follows: schedules paused');
    for (const e of this.#entries.values()) for (const c of e.crons) if (leader) c.resume(); else c.pause();
    // The change log runs on the leader only: two followers would write the same segments twice.
    for (const e of this.#entries.values()) if (leader && !this.#stopping) e.changes?.start(); else void e.changes?.stop();
    if (leader) for (const e of this.#entries.values()) void this.#catchUp(e);
  }

  /** A backup missed while no instance ran (last success older than one period) runs once, now. */
  async #catchUp(e: Entry): Promise<void> {
    if (!(await this.#recount(e, 'catch-up'))) return;
    const now = new Date();
    const period = periodMs(e.job, now);
    const last = e.state.lastSuccessAt;
    if (period === undefined || (last && now.getTime() - last.getTime() <= period)) return;
    if (this.#stopping || !this.#leading() || e.state.current) return;
    this.#log.info({ event: 'catch-up', job: e.job.name, lastSuccess: last?.toISOString() ?? null }, last ? `job "${e.job.name}": last backup ${last.toISOString()} is older than one period; running it now` : `job "${e.job.name}": the store holds no backup yet; running one now`);
    this.#start(e, 'backup', 'startup');
  }

  #tick(e: Entry, kind: RunKind): void {
    if (!this.#leading() || this.#stopping) return;
    const current = e.state.current;
    if (current) {
      const skipped = e.state.skip(kind, 'schedule', `run ${current.id} (${current.kind}, since ${current.startedAt}) was still going`);
      this.#log.warn({ event: 'skip', job: e.job.name, run: skipped.id, kind, busy: current.id }, `job "${e.job.name}": ${kind} tick skipped, the previous run is still going`);
      return;
    }
    this.#start(e, kind, 'schedule');
  }

  #start(e: Entry, kind: RunKind, trigger: RunTrigger): RunView {
    const run = e.state.begin(kind, trigger);
    const abort = new AbortController();
    e.abort = abort;
    const log = this.#log.child({ job: e.job.name, run: run.id, kind, trigger });
    log.info({ event: 'start' }, `${kind} of job "${e.job.name}" started (${trigger})`);
    e.done = this.#execute(e, run, abort.signal, log).finally(() => {
      e.abort = undefined;
      e.done = undefined;
    });
    return run;
  }

  async #execute(e: Entry, run: RunView, signal: AbortSignal, log: Logger): Promise<void> {
    const warn = (message: string) => log.warn({ event: 'warning' }, message);
    // The store's backup count, when the run itself read the whole catalogue (a prune, a verify).
    let counted: number | undefined;
    try {
      if (run.kind === 'backup') {
        const { outcome, kept } = await backupJob(e.job, e.store, signal, warn);
        e.state.finish(run, { ...outcome, status: 'succeeded' });
        counted = kept;
      } else {
        const outcome = await verifyJob(e.store, e.identities, signal);
        const { ok, firstError, ...counts } = outcome;
        const error = ok ? undefined : verifyRunError(counts, firstError);
        e.state.finish(run, { ...counts, status: ok ? 'succeeded' : 'failed', error });
        counted = counts.checked;
      }
    } catch (err) {
      const error = asShieldError(err);
      const aborted = signal.aborted || error instanceof CancelledError;
      e.state.finish(run, { status: aborted ? 'aborted' : 'failed', error: errorView(aborted && !(err instanceof ShieldError) ? new CancelledError('stopped by the shutdown') : error) });
    }
    if (counted === undefined) await this.#recount(e, 'after run');
    else e.state.backupsKept = counted;
    const fields = { event: 'end', status: run.status, durationSeconds: run.durationSeconds, backup: run.backup, keys: run.keys, bytes: run.bytes, revision: run.revision, pruned: run.pruned, checked: run.checked, damaged: run.damaged, undecrypted: run.undecrypted, error: run.error };
    if (run.status === 'succeeded') log.info(fields, `${run.kind} of job "${e.job.name}" succeeded in ${run.durationSeconds?.toFixed(1)} s`);
    else log.error(fields, `${run.kind} of job "${e.job.name}" ${run.status}: ${run.error?.message} (${run.error?.hint})`);
  }

  /** Re-reads how many backups the store holds and when the newest was taken; false if the store could not be read. */
  async #recount(e: Entry, when: string): Promise<boolean> {
    try {
      const { count, newest } = await countBackups(e.store);
      e.state.backupsKept = count;
      if (newest && (!e.state.lastSuccessAt || newest > e.state.lastSuccessAt)) e.state.lastSuccessAt = newest;
      return true;
    } catch (err) {
      const error = asShieldError(err);
      this.#log.warn({ event: 'store', job: e.job.name, error: errorView(error) }, `job "${e.job.name}": cannot list the store ${e.job.to} (${when}): ${error.message}`);
      return false;
    }
  }
}

async function readIdentities(job: ServiceJob): Promise<string[]> {
  try {
    return await readIdentityFile(job.identityFile!);
  } catch (err) {
    const e = asShieldError(err);
    throw new ConfigError(`job "${job.name}": identity_file: ${e.message}`, e.hint, { cause: err });
  }
}
