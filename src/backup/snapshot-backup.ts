import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { castGrpcError } from 'etcd3/lib/errors';
import type { Config } from '../config/config';
import { AuthError, CancelledError, ConnectionError, EtcdError, PermissionError, ShieldError } from '../errors';
import { explainEtcdError } from '../etcd/explain';
import { decodeSnapshotResponse, decodeStatusResponse } from '../etcd/maintenance-codec';
import { MemberClient } from '../etcd/member-client';
import type { Sink } from '../io/sink';
import { TrailerCheck } from '../snapshot/trailer';

export interface SnapshotMember {
  endpoint: string;
  /** Hexadecimal, as etcdctl prints them. */
  clusterId: string;
  memberId: string;
  leader: boolean;
}

export interface SnapshotStreamResult {
  bytes: number;
  /** Hex sha256 of the database, as etcd appended it (and as it was checked). */
  sha256: string;
  /** From the stream's header when etcd sends one (3.5 and later); etcd 3.4 sends none. */
  revision: string | null;
}

const EMPTY: Buffer = Buffer.alloc(0);
/** The least a stalled snapshot stream is waited for, whatever the (per request) timeout. */
const MIN_STREAM_PATIENCE_MS = 5000;
const WATCHDOG_TICK_MS = 500;

/**
 * The member to take the snapshot from: the one asked for, else the first
 * endpoint that answers a status call without an alarm. Each is asked
 * alone, without retries, as `etcdctl endpoint status` does. The chosen
 * member's client stays open for the snapshot (one connection, one login);
 * the caller closes it.
 */
export async function pickMember(config: Config, asked: string | undefined, warn?: (line: string) => void): Promise<{ member: SnapshotMember; client: MemberClient }> {
  const candidates = asked ? [asked] : config.endpoints;
  const problems: string[] = [];
  for (const endpoint of candidates) {
    const client = new MemberClient(config, endpoint, warn);
    try {
      const status = decodeStatusResponse(await client.unary('/etcdserverpb.Maintenance/Status', EMPTY));
      if (status.errors.length) {
        problems.push(`${endpoint}: ${status.errors.join('; ')}`);
        client.close();
        continue;
      }
      return { member: { endpoint, clusterId: status.clusterId, memberId: status.memberId, leader: status.leaderId === status.memberId }, client };
    } catch (err) {
      client.close();
      const explained = explainEtcdError(err, { config: { ...config, endpoints: [endpoint] }, action: 'read the status of', object: 'the member' });
      // Users and passwords are the cluster's: one member refusing them means all would.
      if (explained instanceof AuthError) throw explained;
      problems.push(explained.message);
    }
  }
  throw new ConnectionError(
    `no etcd member could be asked for a snapshot: ${problems.join('; ')}`,
    asked ? 'check the --member URL, or leave it out to let etcd-shield pick a healthy member' : 'check that at least one member is running and healthy (etcdctl endpoint status)',
  );
}

/**
 * Streams Maintenance.Snapshot from one member into the sink, as it comes:
 * the next message is read only once the sink took the last one, so memory
 * stays at a few messages plus the HTTP/2 window. The database's sha256,
 * which etcd sends last, is checked on the way; a short or damaged stream
 * throws, and the caller abandons the output.
 */
export async function streamSnapshot(
  config: Config,
  client: MemberClient,
  member: SnapshotMember,
  sink: Sink,
  opts: { signal?: AbortSignal; onProgress?: (bytes: number) => void } = {},
): Promise<SnapshotStreamResult> {
  const ctx = { config: { ...config, endpoints: [member.endpoint] }, action: 'stream a snapshot from', object: 'the member' };
  const check = new TrailerCheck();
  let revision: string | null = null;
  let stream: Readable | undefined;
  // Streams have no deadline (member-client.ts), so a member that stops sending would hang the backup;
  // only the wait for etcd counts, never the wait for a slow output.
  const patience = Math.max(config.timeoutMs, MIN_STREAM_PATIENCE_MS);
  let waitingSince: number | undefined = Date.now();
  const watchdog = setInterval(() => {
    if (waitingSince !== undefined && Date.now() - waitingSince > patience) {
      stream?.destroy(
        new ConnectionError(
          `etcd member ${member.memberId} at ${member.endpoint} sent no snapshot data for ${patience / 1000} s after ${check.bytes} bytes`,
          'check that member (a stopped or overloaded process, a full disk), then run the backup again, or pick another with --member; an output file keeps its previous contents',
        ),
      );
    }
  }, WATCHDOG_TICK_MS);
  try {
    stream = await client.serverStream('/etcdserverpb.Maintenance/Snapshot', EMPTY);
    const stop = () => stream?.destroy(new CancelledError('stopped by a signal while streaming the snapshot'));
    opts.signal?.addEventListener('abort', stop, { once: true });
    try {
      const take = (msg: Buffer): Buffer => {
        waitingSince = undefined;
        const { blob, revision: header } = decodeSnapshotResponse(msg);
        revision ??= header;
        check.update(blob);
        return blob;
      };
      const taken = () => {
        opts.onProgress?.(check.bytes);
        waitingSince = Date.now();
      };
      if (sink.synchronous) {
        // Thousands of 32 KiB messages: each taken where it arrives, without an iterator's promise.
        const s = stream;
        s.on('data', (msg: Buffer) => {
          try {
            sink.writeSync(take(msg));
            taken();
          } catch (err) {
            s.destroy(err as Error);
          }
        });
        await finished(s);
      } else {
        for await (const msg of stream as AsyncIterable<Buffer>) {
          await sink.write(take(msg));
          taken();
        }
      }
    } finally {
      opts.signal?.removeEventListener('abort', stop);
    }
  } catch (err) {
    if (opts.signal?.aborted) throw new CancelledError('stopped by a signal while streaming the snapshot', undefined, { cause: err });
    const explained = err instanceof ShieldError ? err : explainEtcdError(castGrpcError(err as Error), ctx);
    if (explained instanceof PermissionError) {
      throw new PermissionError(explained.message, 'etcd lets only users with the root role take a snapshot; use such a user, or mode logical (which needs read permission only)', { cause: err });
    }
    throw explained;
  } finally {
    clearInterval(watchdog);
    stream?.destroy();
  }
  const verdict = check.finish();
  if (!verdict.ok) {
    throw new EtcdError(
      `the snapshot stream from etcd member ${member.memberId} at ${member.endpoint} is not intact: ${verdict.problem}`,
      'run the backup again (an output file keeps its previous contents); if it keeps failing, check that member\'s log or pick another with --member',
    );
  }
  return { bytes: check.bytes, sha256: verdict.sha256, revision };
}
