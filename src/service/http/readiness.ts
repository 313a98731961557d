import { CancelledError } from '../../errors';
import type { ReadyCheck, ServiceControl } from '../types';
import { errorBody } from './errors';

/** A store that has not answered by then counts as down. */
export const READY_TIMEOUT_MS = 5000;
/** If the checks ignore the abort, stop waiting this much later. */
const GRACE_MS = 1000;

export interface Readiness {
  ready: boolean;
  stopping: boolean;
  checks: ReadyCheck[];
}

/** Reaches every store at once, never for longer than READY_TIMEOUT_MS (plus a little), and names each store that did not answer. */
export async function readiness(control: ServiceControl, timeoutMs = READY_TIMEOUT_MS): Promise<Readiness> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  let giveUp: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => (giveUp = setTimeout(() => resolve(undefined), timeoutMs + GRACE_MS)));
  try {
    const checks = await Promise.race([control.ready(abort.signal), late]);
    const seconds = timeoutMs / 1000;
    const timedOut = (job: string, store: string): ReadyCheck => ({
      job,
      store,
      ok: false,
      ...errorBody(new CancelledError(`store ${store} of job "${job}" did not answer within ${seconds} s`, 'check that the store is up and reachable from this machine (directory mounted, S3 endpoint answering)')),
    });
    const answered =
      checks?.map((c) => (!c.ok && abort.signal.aborted && c.error?.kind === 'cancelled' ? timedOut(c.job, c.store) : c)) ??
      control.jobs().map((j) => timedOut(j.name, j.store));
    const stopping = control.stopping();
    return { ready: !stopping && answered.every((c) => c.ok), stopping, checks: answered };
  } finally {
    clearTimeout(timer);
    clearTimeout(giveUp);
  }
}
