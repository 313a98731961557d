import type { Config } from '../../config/config';
import { FileError, UsageError } from '../../errors';
import { parseTime } from '../../catalogue/select';
import { readIdentities } from '../identities';
import { type StoreFlags, storeOptions } from '../store-flags';
import { restore, RestoreRunOptions, RestoreSummary } from '../../api/restore';
import { humanBytes, secondsSince } from '../../util/format';
import { type RunContext, warnings } from '../context';
import { Progress } from '../progress';
import { printReport } from '../stdout';
import { REVOKED_LEASE_TTL_SECONDS } from '../../snapshot/scan';

export interface RestoreCommandOptions extends StoreFlags {
  in?: string;
  from?: string;
  backup?: string;
  before?: string;
  toRevision?: number;
  toTime?: string;
  identity?: string[];
  dryRun?: boolean;
  limits: RestoreRunOptions['limits'];
}

export async function runRestore(config: Config, opts: RestoreCommandOptions, ctx: RunContext): Promise<void> {
  if (opts.from && (opts.toRevision !== undefined || opts.toTime !== undefined)) return runPointRestore(config, opts.from, opts, ctx);
  if (opts.from) return runStoreRestore(config, opts.from, opts, ctx);
  if (opts.backup !== undefined || opts.before !== undefined || opts.toTime !== undefined) {
    throw new UsageError('--backup, --before and --to-time pick what to restore from a store', 'add --from DIR or --from s3://bucket/path');
  }
  if (!opts.in && process.stdin.isTTY) {
    throw new FileError('no archive: standard input is a terminal', 'pipe the archive in (< backup.archive) or use --in FILE');
  }
  const start = process.hrtime.bigint();
  const progress = new Progress();
  try {
    const summary = await restore(config, opts.in ? { file: opts.in } : process.stdin, {
      identities: await readIdentities(opts.identity),
      dryRun: opts.dryRun,
      // Without --from, --to-revision reads an etcd snapshot file's history; an archive refuses it.
      revision: opts.toRevision === undefined ? undefined : String(opts.toRevision),
      limits: opts.limits,
      inputName: 'standard input',
      signal: ctx.signal,
      onProgress: progress.onEvent,
      onWarning: warnings(ctx),
    });
    progress.stop();
    report(summary, config, opts, ctx, secondsSince(start));
  } finally {
    progress.stop();
  }
}

/** What every restore from a store shares: flags, progress, the report; `describe` says where the data came from. */
async function restoreFromStoreWith<S extends RestoreSummary>(
  config: Config,
  opts: RestoreCommandOptions,
  ctx: RunContext,
  call: (common: Omit<RestoreRunOptions, 'inputName'> & ReturnType<typeof storeOptions>) => Promise<S>,
  describe: (s: S) => string[],
): Promise<void> {
  if (opts.in) throw new UsageError('give either --in FILE or --from STORE, not both');
  const start = process.hrtime.bigint();
  const progress = new Progress();
  try {
    const summary = await call({
      ...storeOptions(opts),
      identities: await readIdentities(opts.identity),
      dryRun: opts.dryRun,
      limits: opts.limits,
      signal: ctx.signal,
      onProgress: progress.onEvent,
      onWarning: warnings(ctx),
    });
    progress.stop();
    for (const line of describe(summary)) ctx.say(line);
    report(summary, config, opts, ctx, secondsSince(start));
  } finally {
    progress.stop();
  }
}

async function runStoreRestore(config: Config, from: string, opts: RestoreCommandOptions, ctx: RunContext): Promise<void> {
  const { restoreFromStore } = await import('../../api/restore-from-store');
  const before = opts.before === undefined ? undefined : parseTime(opts.before, '--before');
  await restoreFromStoreWith(config, opts, ctx, (common) => restoreFromStore(config, from, { ...common, name: opts.backup, before }), (s) => [`backup ${s.backup.name} from ${s.store}`]);
}

async function runPointRestore(config: Config, from: string, opts: RestoreCommandOptions, ctx: RunContext): Promise<void> {
  if (opts.backup !== undefined || opts.before !== undefined) throw new UsageError('--to-revision and --to-time pick the backup themselves; drop --backup and --before');
  if (opts.toRevision !== undefined && opts.toTime !== undefined) throw new UsageError('give either --to-revision or --to-time, not both');
  const { restoreToPoint } = await import('../../api/restore-to-point');
  const toTime = opts.toTime === undefined ? undefined : parseTime(opts.toTime, '--to-time');
  await restoreFromStoreWith(config, opts, ctx, (common) => restoreToPoint(config, from, { ...common, toRevision: opts.toRevision, toTime }), (s) => [
    ...(opts.toTime !== undefined ? [`time ${opts.toTime} is revision ${s.revision}`] : []),
    `revision ${s.revision}: backup ${s.backup.name} (revision ${s.backup.manifest.revision}) from ${s.store}, plus ${s.events} changes to ${s.changedKeys} keys from ${s.segments} segment${s.segments === 1 ? '' : 's'}`,
  ]);
}

function report(s: RestoreSummary, config: Config, opts: RestoreCommandOptions, ctx: RunContext, took: string): void {
  const a = s.archive;
  const from = a.snapshot
    ? `etcd snapshot (${a.records} keys at revision ${a.snapshot.revision}, ${humanBytes(a.bytes)})`
    : `${a.format} archive (${a.records} keys, ${humanBytes(a.bytes)}${a.header ? `, revision ${a.header.revision} of ${a.header.createdAt}` : ''})`;
  const scope = s.scope ? `prefix ${JSON.stringify(s.scope)}` : 'the whole keyspace';
  if (a.snapshot?.otherMetaProblem) {
    ctx.say(`warning: meta page ${1 - a.snapshot.meta} of the snapshot is unusable (${a.snapshot.otherMetaProblem}), so the other one was read, as bbolt itself would; check the restored keys`);
  }
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
  if (a.snapshot?.missingLeases) {
    ctx.say(`note: ${a.snapshot.missingLeases} leases that keys at revision ${a.snapshot.revision} used were revoked later; their keys were restored with new leases of the same ids that expire in ${REVOKED_LEASE_TTL_SECONDS / 3600} hour`);
  }
}
