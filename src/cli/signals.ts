/**
 * The first SIGINT/SIGTERM asks the running operation to stop at a safe
 * point (it then exits non-zero with a summary); a second one exits at once.
 */
export function abortOnSignals(onFirst: (signal: string) => void): AbortSignal {
  const controller = new AbortController();
  const handler = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) process.exit(signal === 'SIGINT' ? 130 : 143);
    onFirst(signal);
    controller.abort(new Error(`stopped by ${signal}`));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return controller.signal;
}
