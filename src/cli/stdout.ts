import { ExitCode } from '../errors';

let guarded = false;

/**
 * Writes report text (info, validate, verify, dry run) to stdout. Only these
 * commands touch process.stdout: creating it makes fd 1 non-blocking, which
 * would break the archive stream that backup writes to the same fd.
 */
export function printReport(text: string): void {
  if (!guarded) {
    guarded = true;
    // A reader that goes away (| head) ends the report with a message, not a stack trace.
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      process.stderr.write('etcd-shield: standard output was closed before the report was complete\n');
      process.exit(ExitCode.failure);
    });
  }
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}
