import { createWriteStream } from 'node:fs';
import { backup } from '../../api/backup';
import type { BackupFormat } from '../../backup/types';
import type { Config } from '../../config/config';
import { humanBytes, secondsSince } from '../../util/format';
import { type RunContext, warnings } from '../context';
import { Progress } from '../progress';

export interface BackupCommandOptions {
  out?: string;
  format: BackupFormat;
  pageBytes?: number;
}

export async function runBackup(config: Config, opts: BackupCommandOptions, ctx: RunContext): Promise<void> {
  const start = process.hrtime.bigint();
  // Through a file stream, writes go to the thread pool and a closed pipe is an EPIPE error, not a crash.
  const output = opts.out ? { file: opts.out } : createWriteStream('', { fd: 1, autoClose: false, highWaterMark: 1024 * 1024 });
  const progress = new Progress();
  try {
    const summary = await backup(config, output, {
      format: opts.format,
      pageBytes: opts.pageBytes,
      outputName: 'standard output',
      signal: ctx.signal,
      onProgress: progress.onEvent,
      onWarning: warnings(ctx),
    });
    progress.stop();
    ctx.say(
      `backup done: ${summary.keys} keys, ${summary.leases} leases, ${humanBytes(summary.bytes)} (${summary.format} format) at revision ${summary.revision} in ${secondsSince(start)}${opts.out ? ` to ${opts.out}` : ''}`,
    );
  } finally {
    progress.stop();
  }
}
