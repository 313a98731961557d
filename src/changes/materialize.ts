import { open } from 'node:fs/promises';
import { NativeEncoder } from '../archive/native-encode';
import { scanArchive } from '../archive/read';
import type { ArchiveHeader, KeyRecord, LeaseRecord, RecordTable } from '../archive/types';
import { ArchiveError } from '../errors';
import { writeInt64 } from '../util/int64';
import type { ChangeFold } from './fold';

/** KeyRecords framed by the archive encoder. */
class KeyRecordTable implements RecordTable {
  constructor(private readonly rows: KeyRecord[]) {}
  get length(): number {
    return this.rows.length;
  }
  keyLength(i: number): number {
    return this.rows[i]!.key.length;
  }
  valueLength(i: number): number {
    return this.rows[i]!.value.length;
  }
  copyKey(i: number, target: Buffer, at: number): number {
    return this.rows[i]!.key.copy(target, at);
  }
  copyValue(i: number, target: Buffer, at: number): number {
    return this.rows[i]!.value.copy(target, at);
  }
  writeInt64s(i: number, target: Buffer, at: number): void {
    const r = this.rows[i]!;
    writeInt64(target, r.createRevision, at);
    writeInt64(target, r.modRevision, at + 8);
    writeInt64(target, r.version, at + 16);
    writeInt64(target, r.lease, at + 24);
  }
}

export interface PointArchive {
  records: number;
  leases: number;
}

/**
 * Writes the archive of the state at `revision`: the backup's sorted keys
 * merged with the fold's final states (a changed key takes its final value,
 * a deleted one is left out), then every lease a key points at. It is an
 * ordinary archive, so the normal restore verifies and writes it.
 */
export async function writePointArchive(backupPath: string, fold: ChangeFold, revision: number, tool: string, outPath: string, signal?: AbortSignal): Promise<PointArchive> {
  const changed = fold.sorted();
  const enc = new NativeEncoder();
  const out = await open(outPath, 'wx', 0o600);
  const backupLeases = new Map<string, LeaseRecord>();
  const used = new Set<string>();
  let header: ArchiveHeader | undefined;
  let j = 0;
  let records = 0;
  const emit = async (rows: KeyRecord[]) => {
    if (!rows.length) return;
    for (const r of rows) if (r.lease !== '0') used.add(r.lease);
    records += rows.length;
    await out.write(enc.records(new KeyRecordTable(rows)));
  };
  try {
    await scanArchive(
      backupPath,
      async (items) => {
        const rows: KeyRecord[] = [];
        for (const item of items) {
          if (item.kind === 'header') {
            header = item.header;
            const { format: _format, ...rest } = item.header;
            await out.write(enc.start({ ...rest, tool, revision: String(revision), createdAt: new Date().toISOString() }));
          } else if (item.kind === 'lease') {
            backupLeases.set(item.lease.id, item.lease);
          } else if (item.kind === 'record') {
            const k = item.record.key.toString('latin1');
            for (; j < changed.length && changed[j]!.record.key.toString('latin1') <= k; j++) {
              const c = changed[j]!;
              if (c.put) rows.push(c.record);
            }
            const last = j > 0 ? changed[j - 1]! : undefined;
            if (!last || last.record.key.toString('latin1') !== k) rows.push(item.record);
          }
        }
        await emit(rows);
      },
      signal,
    );
    if (!header) throw new ArchiveError(`the backup archive ${backupPath} has no header`);
    await emit(changed.slice(j).filter((c) => c.put).map((c) => c.record));
    let leases = 0;
    for (const id of used) {
      const granted = fold.leases.get(id);
      const l = granted !== undefined ? { id, grantedTtl: granted, remainingTtl: String(Math.max(1, Number(granted))) } : backupLeases.get(id);
      if (!l) throw new ArchiveError(`a key at revision ${revision} points at lease ${id}, which neither the backup nor the change log records`, 'the change log is inconsistent; restore to another revision');
      await out.write(enc.lease(l));
      leases++;
    }
    await out.write(enc.finish());
    await out.sync();
    return { records, leases };
  } finally {
    await out.close();
  }
}
