import { followChanges, type FollowEvent } from '../api/follow';
import { asShieldError } from '../errors';
import type { ObjectStore } from '../store/types';
import { sleep } from '../util/sleep';
import type { ServiceJob } from './config';
import { errorView } from './job-state';
import type { Logger } from './log';
import type { ChangesView } from './types';

const RESTART_FIRST_MS = 2000;
const RESTART_MAX_MS = 60_000;

/**
 * A job's change log (issue 16) inside the service: the follower runs
 * while this instance leads and stops (storing its open segment) when it
 * no longer does or the service stops. Faults inside the follower are
 * retried there; an error that ends it (permission, auth...) is logged and
 * it starts again after a pause that grows up to a minute.
 */
export class JobChangeLog {
  #abort: AbortController | undefined;
  /** What the service last asked for: following (it leads) or not. */
  #wanted = false;
  #done: Promise<void> | undefined;
  #covered: { revision: number; at: Date } | undefined;
  #segments = 0;
  #gaps = 0;
  #error: ChangesView['error'];

  constructor(
    private readonly job: ServiceJob,
    private readonly store: ObjectStore,
    private readonly log: Logger,
    private readonly flushSeconds: number,
  ) {}

  /**
   * Starts the follower, or keeps it running. Asked while a stop is still
   * storing the open segment (leadership lost and won back at once), it
   * starts again as soon as that stop is done.
   */
  start(): void {
    this.#wanted = true;
    if (this.#abort) return;
    const abort = new AbortController();
    this.#abort = abort;
    this.#done = this.#loop(abort.signal).finally(() => {
      if (this.#abort === abort) this.#abort = undefined;
      if (this.#wanted) this.start();
    });
  }

  /** Stops the follower, which stores what it received first. */
  async stop(): Promise<void> {
    this.#wanted = false;
    this.#abort?.abort(new Error('stopped'));
    await this.#done;
  }

  view(now = new Date()): ChangesView {
    const c = this.#covered;
    return {
      flushSeconds: this.flushSeconds,
      running: this.#abort !== undefined,
      coveredRevision: c && String(c.revision),
      coveredAt: c?.at.toISOString(),
      lagSeconds: c && Math.max(0, (now.getTime() - c.at.getTime()) / 1000),
      segments: this.#segments,
      gaps: this.#gaps,
      error: this.#error,
    };
  }

  async #loop(signal: AbortSignal): Promise<void> {
    const log = this.log.child({ job: this.job.name, kind: 'changes' });
    let pause = RESTART_FIRST_MS;
    while (!signal.aborted) {
      log.info({ event: 'changes-start' }, `job "${this.job.name}": change log following, flushed every ${this.flushSeconds} s`);
      try {
        await followChanges(this.job.etcd, this.store, {
          flushMs: this.flushSeconds * 1000,
          compression: this.job.compress,
          recipients: [...this.job.encryptTo],
          signal,
          onWarning: (m) => log.warn({ event: 'warning' }, m),
          onEvent: (e) => this.#onEvent(e, log),
        });
        this.#error = undefined;
      } catch (err) {
        if (signal.aborted) break;
        const e = asShieldError(err);
        this.#error = errorView(e);
        log.error({ event: 'changes-error', error: this.#error }, `job "${this.job.name}": change log stopped: ${e.message} (${e.hint}); starting again in ${pause / 1000} s`);
        await sleep(pause, signal);
        pause = Math.min(RESTART_MAX_MS, pause * 2);
      }
    }
    log.info({ event: 'changes-stop', coveredRevision: this.#covered?.revision }, `job "${this.job.name}": change log stopped${this.#covered ? ` at revision ${this.#covered.revision}` : ''}`);
  }

  #onEvent(e: FollowEvent, log: Logger): void {
    switch (e.kind) {
      case 'segment':
        this.#segments++;
        this.#covered = { revision: e.last, at: e.coveredAt };
        log.debug({ event: 'segment', segment: e.key, first: e.first, last: e.last, events: e.events, bytes: e.bytes }, `change segment ${e.key} stored`);
        break;
      case 'gap':
        this.#gaps++;
        log.warn({ event: 'gap', from: e.from, compactRevision: e.compactRevision }, `job "${this.job.name}": etcd compacted past the change log (revisions ${e.from}-${e.compactRevision - 1} are lost); taking a new full backup`);
        break;
      case 'backup':
        log.info({ event: 'changes-backup', backup: e.name, revision: e.revision }, `job "${this.job.name}": full backup ${e.name} taken for the change log`);
        break;
      case 'start':
        log.info({ event: 'changes-from', from: e.from, backup: e.backup }, `job "${this.job.name}": change log continues at revision ${e.from}, after backup ${e.backup}`);
        break;
    }
  }
}
