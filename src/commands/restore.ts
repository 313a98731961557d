import type { Config } from '../config/config';
import { CancelledError, FileError } from '../errors';
import { connect } from '../etcd/connect';
import { printReport } from '../io/report';
import { spoolStdin } from '../io/spool';
import { withTempDir } from '../io/tempdir';
import { Progress } from '../cli/progress';
import { restore, RestoreInterrupted, RestoreSummary } from '../restore/restore';
import type { BatchLimits } from '../restore/writer';
import { humanBytes, secondsSince } from '../util/format';
import type { RunContext } from './context';

export interface RestoreCommandOptions {
  in?: string;
  dryRun?: boolean;
  limits: Partial<BatchLimits>;
}

export async function runRestore(config: Config, opts: RestoreCommandOptions, ctx: RunContext): Promise<void> {
  if (!opts.in && process.stdin.isTTY) {
    throw new FileError('no archive: standard input is a terminal', 'pipe the archive in (< backup.archive) or use --in FILE');
  }
  const start = process.hrtime.bigint();
  await withTempDir(async (dir) => {
    const path = opts.in ?? (await spoolStdin(dir, ctx.signal));
    const conn = connect(config);
    const progress = new Progress();
    try {
      const summary = await restore(conn, path, {
        prefix: config.prefix,
        overwrite: config.overwrite,
        dryRun: opts.dryRun,
        limits: opts.limits,
        signal: ctx.signal,
        onPhase: (phase) => progress.phase(phase),
        onProgress: (done, total) => progress.update(done, total),
      });
      progress.stop();
      report(summary, config, opts, ctx, secondsSince(start));
    } catch (err) {
      progress.stop();
      if (err instanceof RestoreInterrupted) {
        ctx.say(
          // etcd may apply a transaction whose answer never arrives, hence "at least".
          `restore stopped after writing at least ${err.written} keys and deleting ${err.deleted}; no key was deleted unless every key of the archive had been written. Running the same restore again converges.`,
        );
        if (ctx.signal.aborted && !(err.error instanceof CancelledError)) throw new CancelledError('restore stopped by a signal');
        throw err.error;
      }
      throw err;
    } finally {
      conn.close();
    }
  });
}

function report(s: RestoreSummary, config: Config, opts: RestoreCommandOptions, ctx: RunContext, took: string): void {
  const a = s.archive;
  const from = `${a.format} archive (${a.records} keys, ${humanBytes(a.bytes)}${a.header ? `, revision ${a.header.revision} of ${a.header.createdAt}` : ''})`;
  const scope = s.scope ? `prefix ${JSON.stringify(s.scope)}` : 'the whole keyspace';
  if (s.plan) {
    const p = s.plan;
    const lines = [
      `dry run: nothing was changed. Restoring the ${from} into ${scope} would:`,
      `  add      ${p.add} keys${p.samples.add.length ? ` (e.g. ${p.samples.add.map((k) => JSON.stringify(k)).join(', ')})` : ''}`,
      `  update   ${p.update} keys${p.samples.update.length ? ` (e.g. ${p.samples.update.map((k) => JSON.stringify(k)).join(', ')})` : ''}`,
      `  keep     ${p.unchanged} keys unchanged`,
      config.overwrite
        ? `  delete   ${p.extra} keys that the archive does not hold (overwrite is on)`
        : `  leave    ${p.extra} keys that the archive does not hold (overwrite is off)`,
    ];
    printReport(lines.join('\n'));
    return;
  }
  ctx.say(
    `restore done: wrote ${s.written} keys${s.leasesGranted ? ` with ${s.leasesGranted} leases` : ''}${config.overwrite ? `, deleted ${s.deleted} keys the archive lacks` : ''} in ${scope} from the ${from}, in ${took}`,
  );
  if (opts.dryRun === undefined && a.format === 'legacy') {
    ctx.say('note: legacy archives carry no leases or revisions; keys were restored without leases');
  }
}
