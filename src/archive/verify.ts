import { ArchiveError } from '../errors';
import { hasPrefix } from './keys';
import { scanArchive } from './read';
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
}

/**
 * Reads a whole archive and checks it end to end without touching etcd.
 * Throws ArchiveError at the first defect; returns what restore needs to know.
 */
export async function verifyArchive(path: string, scope = '', signal?: AbortSignal): Promise<ArchiveSummary> {
  const prefix = Buffer.from(scope);
  const summary: Omit<ArchiveSummary, 'format' | 'bytes'> = {
    records: 0,
    inScope: 0,
    keyBytes: 0,
    valueBytes: 0,
    leases: [],
    usedLeases: new Set(),
  };
  const { format, bytes } = await scanArchive(
    path,
    (items) => {
      for (const item of items) {
        switch (item.kind) {
          case 'header':
            summary.header = item.header;
            break;
          case 'record': {
            const r = item.record;
            summary.records++;
            summary.keyBytes += r.key.length;
            summary.valueBytes += r.value.length;
            if (hasPrefix(r.key, prefix)) {
              summary.inScope++;
              if (r.lease !== '0') summary.usedLeases.add(r.lease);
            }
            break;
          }
          case 'lease':
            summary.leases.push(item.lease);
            break;
          case 'trailer':
            summary.trailer = item.trailer;
            break;
        }
      }
    },
    signal,
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
  return { format, bytes, ...summary };
}
