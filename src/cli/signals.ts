/**
 * The first SIGINT/SIGTERM asks the running operation to stop at a safe
 * point (it then exits non-zero with a summary); a second one quits at once.
 */
export function abortOnSignals(onFirst: (signal: string) => void): AbortSignal {
  const controller = new AbortController();
  const handler = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) quitNow(signal);
    onFirst(signal);
    controller.abort(new Error(`stopped by ${signal}`));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return controller.signal;
}

/**
 * Runs the exit cleanups (temporary files), then dies of the signal itself
 * (a shell shows 130 for SIGINT, 143 for SIGTERM). Not process.exit(): when
 * the reader of our output is stuck, a libuv thread is blocked writing to
 * it, and process.exit waits for that thread forever.
 */
function quitNow(signal: NodeJS.Signals): never {
  process.exitCode = signal === 'SIGINT' ? 130 : 143;
  process.emit('exit', process.exitCode);
  process.removeAllListeners(signal);
  process.kill(process.pid, signal);
  // The default action ends the process before this runs; just in case it did not.
  process.exit(process.exitCode);
}
