import { followChanges } from '../../api/follow';
import type { Config } from '../../config/config';
import { parseRecipients, readRecipientsFile } from '../../pipeline/encryption';
import { humanBytes } from '../../util/format';
import { type RunContext, warnings } from '../context';
import { type EncryptFlags, type StoreFlags, storeOptions } from '../store-flags';

export interface FollowCommandOptions extends StoreFlags, EncryptFlags {
  to: string;
  flush?: number;
  idleFlush?: number;
  segmentBytes?: number;
}

/** Runs until SIGTERM or Ctrl-C, then stores the open segment and exits 0. */
export async function runFollow(config: Config, opts: FollowCommandOptions, ctx: RunContext): Promise<void> {
  const recipients = parseRecipients(opts.encryptTo ?? [], '--encrypt-to');
  for (const file of opts.encryptToFile ?? []) recipients.push(...(await readRecipientsFile(file)));
  await followChanges(config, opts.to, {
    ...storeOptions(opts),
    flushMs: opts.flush,
    idleFlushMs: opts.idleFlush,
    maxSegmentBytes: opts.segmentBytes,
    compression: opts.compress,
    recipients,
    signal: ctx.signal,
    onWarning: warnings(ctx),
    onEvent: (e) => {
      if (e.kind === 'start') ctx.say(`following changes from revision ${e.from} (after backup ${e.backup}) into ${opts.to}`);
      else if (e.kind === 'segment') ctx.say(`segment r${e.first}-r${e.last}: ${e.events} events, ${humanBytes(e.bytes)} stored as ${e.key}`);
      else if (e.kind === 'gap') ctx.say(`gap: revisions from ${e.from} were compacted away (oldest left ${e.compactRevision}); marked as ${e.key}`);
      else ctx.say(`full backup ${e.name} at revision ${e.revision}`);
    },
  });
  ctx.say('follow stopped: the open segment was stored');
}
