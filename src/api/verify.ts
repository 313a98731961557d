import type { ArchiveFormat } from '../archive/types';
import { type ArchiveSummary, verifyArchive } from '../archive/verify';
import { withArchiveFile } from './input';
import type { ArchiveInput, OperationOptions } from './options';

export interface VerifySummary {
  ok: true;
  format: ArchiveFormat;
  /** null for legacy archives, which record no revision, prefix, cluster or time. */
  revision: string | null;
  keys: number;
  leases: number;
  bytes: number;
  prefix: string | null;
  /** Hexadecimal, as etcdctl prints it. */
  clusterId: string | null;
  createdAt: string | null;
  tool: string | null;
  sha256: string | null;
  /** Only for an etcd snapshot file. */
  snapshot?: {
    /** The oldest revision it can restore; "0" when never compacted. */
    compactRevision: string;
    /** etcd's sha256 trailer: present (and then it matched) or absent. */
    trailer: 'matched' | 'absent';
    /** Which meta page was read; a problem with the other one, if any. */
    metaPage: number;
    otherMetaProblem: string | null;
    pages: number;
  };
}

/** Checks an archive end to end (structure, order, count, sha256) without etcd; throws an ArchiveError at the first defect. */
export async function verify(input: ArchiveInput, opts: Pick<OperationOptions, 'signal'> & { inputName?: string; identities?: string[] } = {}): Promise<VerifySummary> {
  return withArchiveFile(input, opts.inputName, opts.signal, async (path) => summarize(await verifyArchive(path, '', opts.signal)), opts.identities);
}

export function summarize(s: ArchiveSummary): VerifySummary {
  return {
    ok: true,
    format: s.format,
    revision: s.header?.revision ?? s.snapshot?.revision ?? null,
    keys: s.records,
    leases: s.leases.length,
    bytes: s.bytes,
    prefix: s.header?.prefix ?? null,
    clusterId: s.header ? BigInt(s.header.clusterId).toString(16) : null,
    createdAt: s.header?.createdAt ?? null,
    tool: s.header?.tool ?? null,
    sha256: s.trailer?.sha256 ?? null,
    ...(s.snapshot
      ? {
          snapshot: {
            compactRevision: s.snapshot.compactRevision,
            trailer: s.snapshot.trailer ? 'matched' : 'absent',
            metaPage: s.snapshot.meta,
            otherMetaProblem: s.snapshot.otherMetaProblem ?? null,
            pages: s.snapshot.pages,
          },
        }
      : {}),
  };
}
