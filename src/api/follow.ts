import type { Config } from '../config/config';
import { Follower, type FollowEvent } from '../changes/follower';
import { ConfigError } from '../errors';
import { connect } from '../etcd/connect';
import type { Compression } from '../pipeline/types';
import { backupToStore } from './backup-to-store';
import type { OperationOptions } from './options';
import { type StoreOptions, type StoreRef, withStore } from './store-ref';

export type { FollowEvent };

export interface FollowOptions extends Pick<OperationOptions, 'signal' | 'onWarning'>, StoreOptions {
  /** How often the open segment is stored (default 5 s): the most a crash can lose. */
  flushMs?: number;
  /** With no changes, how often an empty segment records that the log is current (default 60 s). */
  idleFlushMs?: number;
  /** A segment is stored early once its events reach this many bytes (default 8 MiB). */
  maxSegmentBytes?: number;
  /** Of segments and of the full backups follow takes (default zstd). */
  compression?: Compression;
  /** age X25519 recipients: segments and backups are encrypted to all of them. */
  recipients?: string[];
  /** Each segment stored, gap found and full backup taken. */
  onEvent?: (e: FollowEvent) => void;
}

export const DEFAULT_FLUSH_MS = 5000;

/** Why a change log and snapshot mode do not go together. */
const SNAPSHOT_CHANGES = 'a change log continues etcd-shield archives, and snapshot mode takes etcd snapshots, which a restore to a point cannot start from';

/**
 * Records every change under config.prefix into the store as change
 * segments until opts.signal fires, then stores the open segment and
 * returns. It starts after the newest full backup (taking one first if the
 * store has none) or after the segments that already continue it. Faults
 * (a member, the store, the watch) are retried with backoff; a compaction
 * past its position is recorded as a gap and covered by a new full backup.
 */
export async function followChanges(config: Config, to: StoreRef, opts: FollowOptions = {}): Promise<void> {
  if (config.mode === 'snapshot') throw new ConfigError(SNAPSHOT_CHANGES, 'set mode to logical for the change log; snapshots can go to a store of their own');
  const compression = opts.compression ?? 'zstd';
  const recipients = opts.recipients ?? [];
  await withStore(to, opts, async (store) => {
    const conn = connect(config, config.endpoints, { warn: opts.onWarning });
    try {
      const follower = new Follower(conn, store, config, {
        flushMs: opts.flushMs ?? DEFAULT_FLUSH_MS,
        idleFlushMs: opts.idleFlushMs ?? 60_000,
        maxSegmentBytes: opts.maxSegmentBytes ?? 8 * 1024 * 1024,
        form: { compression, encrypted: recipients.length > 0 },
        recipients,
        signal: opts.signal,
        warn: opts.onWarning ?? (() => undefined),
        onEvent: opts.onEvent ?? (() => undefined),
        fullBackup: async (signal) => {
          const b = await backupToStore(config, store, { compression, recipients, signal, onWarning: opts.onWarning });
          return b.manifest;
        },
      });
      await follower.run();
    } finally {
      conn.close();
    }
  });
}
