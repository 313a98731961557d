import { ArchiveError } from '../errors';
import { checkSnapshotFile, type SnapshotCheck } from '../snapshot/verify';
import type { SnapshotFacts } from '../snapshot/scan';
import { detectFormat, scanArchive } from './read';
import type { ArchiveFormat, ArchiveHeader, ArchiveTrailer, LeaseRecord } from './types';

export interface ArchiveSummary {
  format: ArchiveFormat;
  bytes: number;
  header?: ArchiveHeader;
  trailer?: ArchiveTrailer;
  records: number;
  /** Records whose key starts with the scope given to verifyArchive. */
  inScope: number;
  keyBytes: number;
  valueBytes: number;
  leases: LeaseRecord[];
  /** Lease ids that in-scope records point at. */
  usedLeases: Set<string>;
  /** For an etcd snapshot: what it holds, and what its checks found. */
  snapshot?: SnapshotFacts & SnapshotCheck;
}

/**
 * Reads a whole archive and checks it end to end without touching etcd.
 * Throws ArchiveError at the first defect; returns what restore needs to know.
 * An etcd snapshot's trailer and tree are checked first, then it is read at
 * `revision` (scanArchive).
 */
export async function verifyArchive(path: string, scope = '', signal?: AbortSignal, revision?: string): Promise<ArchiveSummary> {
  const prefix = Buffer.from(scope);
  const check = (await detectFormat(path)) === 'etcd-snapshot' ? await checkSnapshotFile(path, signal) : undefined;
  const summary: Omit<ArchiveSummary, 'format' | 'bytes'> = {
    records: 0,
    inScope: 0,
    keyBytes: 0,
    valueBytes: 0,
    leases: [],
    usedLeases: new Set(),
  };
  const { format, bytes, snapshot } = await scanArchive(
    path,
    (items) => {
      for (const item of items) {
        if (item.kind === 'header') summary.header = item.header;
        else if (item.kind === 'lease') summary.leases.push(item.lease);
        else if (item.kind === 'trailer') summary.trailer = item.trailer;
      }
    },
    signal,
    (r) => {
      summary.records++;
      summary.keyBytes += r.keyLength;
      summary.valueBytes += r.valueLength;
      if (r.hasPrefix(prefix)) {
        summary.inScope++;
        const lease = r.lease();
        if (lease !== '0') summary.usedLeases.add(lease);
      }
    },
    revision,
  );
  if (format === 'etcd-shield') {
    const listed = new Set(summary.leases.map((l) => l.id));
    const missing = [...summary.usedLeases].find((id) => !listed.has(id));
    if (missing !== undefined) {
      throw new ArchiveError(
        `a record points at lease ${missing}, which the archive's lease list lacks`,
        'the archive is inconsistent; use another backup',
      );
    }
  }
  return { format, bytes, ...summary, ...(snapshot && check ? { snapshot: { ...snapshot, ...check } } : {}) };
}
