import { writeSync } from 'node:fs';
import { ExitCode } from '../exit-code';

let stream = false;

/**
 * Writes report text (info, validate, verify, dry run, help) to stdout. It
 * writes to fd 1 directly, without process.stdout: creating that stream costs
 * SHIELD's `info` more than the rest of it on a pipe (docs/performance.md,
 * "Start-up"), and makes fd 1 non-blocking, which would break the archive
 * stream that backup writes to the same fd.
 */
export function printReport(text: string): void {
  const buf = Buffer.from(text.endsWith('\n') ? text : `${text}\n`);
  if (stream) return streamReport(buf);
  let at = 0;
  try {
    while (at < buf.length) at += writeSync(1, buf, at);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EPIPE') closedEarly();
    // A non-blocking fd 1 (left so by another program) that is full: the stream waits for it.
    if (code !== 'EAGAIN') throw err;
    stream = true;
    streamReport(buf.subarray(at));
  }
}

function streamReport(buf: Buffer): void {
  if (process.stdout.listenerCount('error') === 0) {
    // A reader that goes away (| head) ends the report with a message, not a stack trace.
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') throw err;
      closedEarly();
    });
  }
  process.stdout.write(buf);
}

function closedEarly(): never {
  process.stderr.write('etcd-shield: standard output was closed before the report was complete\n');
  process.exit(ExitCode.failure);
}
