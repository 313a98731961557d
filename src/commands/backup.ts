import { backup, BackupFormat } from '../backup/backup';
import { CancelledError } from '../errors';
import { connect } from '../etcd/connect';
import { Sink } from '../io/sink';
import { Progress } from '../cli/progress';
import type { Config } from '../config/config';
import { humanBytes, secondsSince } from '../util/format';
import type { RunContext } from './context';

export interface BackupCommandOptions {
  out?: string;
  format: BackupFormat;
  pageBytes?: number;
}

export async function runBackup(config: Config, opts: BackupCommandOptions, ctx: RunContext): Promise<void> {
  const start = process.hrtime.bigint();
  const sink = opts.out ? Sink.file(opts.out) : Sink.stdout();
  const conn = connect(config);
  const progress = new Progress();
  progress.phase('backup');
  try {
    const summary = await backup(conn, sink, {
      prefix: config.prefix,
      format: opts.format,
      pageBytes: opts.pageBytes,
      signal: ctx.signal,
      onProgress: (done, total) => progress.update(done, total),
    });
    await sink.end();
    progress.stop();
    if (summary.keys === 0 && opts.format === 'legacy') {
      ctx.say('warning: no keys matched; the legacy format cannot record an empty backup, so the output is empty');
    }
    ctx.say(
      `backup done: ${summary.keys} keys, ${summary.leases} leases, ${humanBytes(summary.bytes)} (${summary.format} format) at revision ${summary.revision} in ${secondsSince(start)}${opts.out ? ` to ${opts.out}` : ''}`,
    );
  } catch (err) {
    progress.stop();
    await sink.abandon().catch(() => undefined);
    if (ctx.signal.aborted || err instanceof CancelledError) {
      throw new CancelledError('backup stopped by a signal; the archive is incomplete (no trailer) and restore will refuse it');
    }
    throw err;
  } finally {
    conn.close();
  }
}
