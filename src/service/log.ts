import pino, { type Logger } from 'pino';

export type { Logger };

export interface LoggerOptions {
  /** Readable lines for a person at a terminal; JSON lines otherwise. */
  pretty: boolean;
  debug?: boolean;
  /** Where lines go (default stderr). */
  destination?: NodeJS.WritableStream;
}

/**
 * One JSON object per line on stderr for log collectors, readable lines
 * at a terminal. Secrets never reach it: only run views and error
 * messages are logged, and those are built without them.
 */
export function createLogger(opts: LoggerOptions): Logger {
  const level = opts.debug ? 'debug' : 'info';
  const base = { level, base: { service: 'etcd-shield' }, timestamp: pino.stdTimeFunctions.isoTime };
  if (opts.pretty) {
    // pino-pretty in the same thread: a transport worker would lose the last lines when the process ends on a signal.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const pretty = require('pino-pretty') as typeof import('pino-pretty');
    return pino(base, pretty.build({ destination: 2, sync: true, ignore: 'pid,hostname,service,event', translateTime: 'SYS:HH:MM:ss', singleLine: true }));
  }
  return pino(base, opts.destination ?? pino.destination({ fd: 2, sync: true }));
}
