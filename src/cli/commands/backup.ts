import { createWriteStream } from 'node:fs';
import type { BackupFormat } from '../../backup/types';
import type { Config } from '../../config/config';
import { UsageError } from '../../errors';
import { WRITE_BUFFER_BYTES } from '../../io/sink';
import { parseRecipients, readRecipientsFile } from '../../pipeline/encryption';
import { humanBytes, secondsSince } from '../../util/format';
import { type RunContext, warnings } from '../context';
import { scavengeEvery } from '../scavenge';
import { Progress } from '../progress';
import { printReport } from '../stdout';
import { type EncryptFlags, type StoreFlags, storeOptions } from '../store-flags';

/** Snapshot bytes between young-generation collections (src/cli/scavenge.ts). */
const SCAVENGE_EVERY = 4 * 1024 * 1024;

export interface BackupCommandOptions extends StoreFlags, EncryptFlags {
  out?: string;
  to?: string;
  json?: boolean;
  format: BackupFormat;
  pageBytes?: number;
  member?: string;
}

export async function runBackup(config: Config, opts: BackupCommandOptions, ctx: RunContext): Promise<void> {
  if (config.mode === 'snapshot' && opts.format !== 'etcd-shield') throw new UsageError('--format chooses an archive format; snapshot mode writes etcd\'s own snapshot format', 'drop --format');
  if (config.mode === 'snapshot' && !opts.to) return runSnapshotBackup(config, opts, ctx);
  if (opts.member !== undefined && config.mode !== 'snapshot') throw new UsageError('--member picks the member a snapshot is taken from', 'add --mode snapshot, or drop --member');
  if (opts.to) return runStoreBackup(config, opts.to, opts, ctx);
  if (opts.compress || opts.encryptTo?.length || opts.encryptToFile?.length) {
    throw new UsageError('--compress, --encrypt-to and --encrypt-to-file apply to backups in a store', 'add --to DIR or --to s3://bucket/path (a plain archive on stdout can be piped through zstd or age)');
  }
  if (opts.json) throw new UsageError('--json applies to backups in a store (--to)', 'add --to DIR, or drop --json');
  const start = process.hrtime.bigint();
  // Through a file stream, writes go to the thread pool and a closed pipe is an EPIPE error, not a crash.
  const output = opts.out ? { file: opts.out } : createWriteStream('', { fd: 1, autoClose: false, highWaterMark: WRITE_BUFFER_BYTES });
  const progress = new Progress();
  try {
    // Loaded here, not at the top: snapshot mode does without etcd3 (docs/performance.md, "Snapshot mode").
    const { backup } = await import('../../api/backup');
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

async function runSnapshotBackup(config: Config, opts: BackupCommandOptions, ctx: RunContext): Promise<void> {
  if (opts.compress || opts.encryptTo?.length || opts.encryptToFile?.length || opts.json) {
    throw new UsageError('--compress, --encrypt-to, --encrypt-to-file and --json apply to backups in a store', 'add --to DIR or --to s3://bucket/path, or drop them (a snapshot on standard output can be piped through zstd or age)');
  }
  const start = process.hrtime.bigint();
  const output = opts.out ? { file: opts.out } : createWriteStream('', { fd: 1, autoClose: false, highWaterMark: WRITE_BUFFER_BYTES });
  const { snapshotBackup } = await import('../../api/snapshot-backup');
  const s = await snapshotBackup(config, output, {
    member: opts.member,
    outputName: 'standard output',
    signal: ctx.signal,
    onProgress: scavengeEvery(SCAVENGE_EVERY),
    onWarning: warnings(ctx),
  });
  ctx.say(
    `backup done: etcd snapshot of member ${s.memberId} (${s.leader ? 'leader' : 'follower'}) at ${s.member}, ${s.revision === null ? 'revision not reported by etcd' : `revision ${s.revision}`}, ${humanBytes(s.bytes)}, sha256 ${s.sha256.slice(0, 16)}... checked, in ${secondsSince(start)}${opts.out ? ` to ${opts.out}` : ''}`,
  );
}

async function runStoreBackup(config: Config, to: string, opts: BackupCommandOptions, ctx: RunContext): Promise<void> {
  if (opts.out) throw new UsageError('give either --out FILE or --to STORE, not both');
  if (opts.format !== 'etcd-shield') throw new UsageError('a store holds etcd-shield archives and etcd snapshots, not legacy archives; --format legacy writes to --out or standard output');
  const recipients = parseRecipients(opts.encryptTo ?? [], '--encrypt-to');
  for (const file of opts.encryptToFile ?? []) recipients.push(...(await readRecipientsFile(file)));
  const start = process.hrtime.bigint();
  const snapshot = config.mode === 'snapshot';
  const progress = new Progress();
  // A snapshot's progress counts bytes, not keys: no bar, but the collections that keep its memory down.
  const scavenge = snapshot ? scavengeEvery(SCAVENGE_EVERY) : undefined;
  try {
    // Snapshot mode loads no etcd3 (docs/design.md).
    const run = snapshot ? (await import('../../api/snapshot-to-store')).snapshotToStore : (await import('../../api/backup-to-store')).backupToStore;
    const r = await run(config, to, {
      ...storeOptions(opts),
      compression: opts.compress ?? 'zstd',
      recipients,
      pageBytes: opts.pageBytes,
      member: opts.member,
      signal: ctx.signal,
      onProgress: scavenge ? (e) => e.phase === 'snapshot' && scavenge(e) : progress.onEvent,
      onWarning: warnings(ctx),
    });
    progress.stop();
    const m = r.manifest;
    if (opts.json) printReport(JSON.stringify({ store: r.store, ...m }, null, 2));
    const sealed = m.encryption.type === 'age' ? `, encrypted to ${m.encryption.recipients.length} age recipient${m.encryption.recipients.length === 1 ? '' : 's'}` : ', not encrypted';
    const from = r.member ? ` of member ${r.member.memberId} (${r.member.leader ? 'leader' : 'follower'}) at ${r.member.endpoint}` : '';
    const what = snapshot ? `etcd snapshot${from} at revision ${m.revision}, holding ${m.keys} keys and ${m.leases} leases` : `${m.keys} keys, ${m.leases} leases at revision ${m.revision}`;
    ctx.say(`backup done: ${what}; ${humanBytes(m.archiveBytes)} stored as ${humanBytes(m.storedBytes)} (${m.compression}${sealed}) in ${secondsSince(start)}`);
    ctx.say(`stored as ${r.name} in ${r.store}`);
  } finally {
    progress.stop();
  }
}
