import type { Writable } from 'node:stream';
import { pickMember, streamSnapshot } from '../backup/snapshot-backup';
import { parseEndpoints, type Config } from '../config/config';
import { CancelledError, ConfigError } from '../errors';
import { Sink } from '../io/sink';
import { snapshotRevision } from '../snapshot/scan';
import { ArchiveOutput, isFile, OperationOptions, phases } from './options';

export interface SnapshotBackupOptions extends OperationOptions {
  /** Client URL of the member to take the snapshot from (default: the first healthy endpoint). */
  member?: string;
  /** How messages name a stream output (default "the output stream"). */
  outputName?: string;
}

export interface SnapshotBackupSummary {
  format: 'etcd-snapshot';
  /** The member's client URL, its id and its cluster's (hexadecimal). */
  member: string;
  memberId: string;
  clusterId: string;
  leader: boolean;
  /** The snapshot's newest revision; null when neither etcd nor the output tells (etcd 3.4 to a stream). */
  revision: string | null;
  /** Bytes written: the database and etcd's 32-byte sha256 trailer. */
  bytes: number;
  /** Hex sha256 of the database, checked against the trailer. */
  sha256: string;
}

/**
 * Writes etcd's own database snapshot, byte for byte what `etcdctl snapshot
 * save` writes (the bbolt database, then its sha256), from one member. The
 * whole keyspace only: a prefix is refused. A file output appears only once
 * complete and checked; a failed run keeps the previous file.
 */
export async function snapshotBackup(config: Config, output: ArchiveOutput, opts: SnapshotBackupOptions = {}): Promise<SnapshotBackupSummary> {
  if (config.prefix !== '') {
    throw new ConfigError(
      `snapshot mode takes the whole keyspace, so prefix ${JSON.stringify(config.prefix)} cannot apply`,
      'leave prefix empty in snapshot mode (restore can still take one prefix out of the snapshot), or use mode logical',
    );
  }
  const asked = opts.member === undefined ? undefined : memberUrl(opts.member, config.secure);
  const report = phases(opts.onProgress);
  report.phase('choosing a member');
  const { member, client } = await pickMember(config, asked, opts.onWarning);
  let result;
  try {
    const sink = isFile(output) ? Sink.file(output.file, { synchronous: true }) : new Sink(output as Writable, opts.outputName ?? 'the output stream');
    report.phase('snapshot');
    try {
      result = await streamSnapshot(config, client, member, sink, { signal: opts.signal, onProgress: (bytes) => report.progress(bytes, 0) });
      await sink.end();
    } catch (err) {
      await sink.abandon().catch(() => undefined);
      if (opts.signal?.aborted && !(err instanceof CancelledError)) throw new CancelledError('snapshot backup stopped by a signal', undefined, { cause: err });
      throw err;
    }
  } finally {
    client.close();
  }
  let revision = result.revision;
  if (revision === null && isFile(output)) {
    revision = await snapshotRevision(output.file).catch((err: Error) => {
      opts.onWarning?.(`the snapshot was written and its sha256 checked, but its revision could not be read back: ${err.message}`);
      return null;
    });
  }
  return { format: 'etcd-snapshot', member: member.endpoint, memberId: member.memberId, clusterId: member.clusterId, leader: member.leader, revision, bytes: result.bytes, sha256: result.sha256 };
}

function memberUrl(value: string, secure: boolean): string {
  let parsed;
  try {
    parsed = parseEndpoints(value);
  } catch (err) {
    throw new ConfigError(`--member ${JSON.stringify(value)} ${(err as Error).message}`, 'give one client URL, e.g. http://10.0.0.11:2379');
  }
  if (parsed.endpoints.length !== 1) throw new ConfigError(`--member takes one client URL, not ${parsed.endpoints.length}`, 'give one client URL, e.g. http://10.0.0.11:2379');
  if (parsed.secure !== secure) {
    throw new ConfigError(`--member ${parsed.endpoints[0]} uses another scheme than the endpoints`, `write the member with ${secure ? 'https' : 'http'}://, as the endpoints are`);
  }
  return parsed.endpoints[0]!;
}
