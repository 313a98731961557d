import { scanArchive } from '../archive/read';
import { type ArchiveSummary, verifyArchive } from '../archive/verify';
import type { SnapshotMemo } from '../snapshot/scan';
import { KeyOrderWindow } from './key-order';
import { checkStamp, type FileStamp, type Put, type RecordSource, stampFile } from './source';

/**
 * An archive file of any format, read twice: once to verify it whole, once
 * to restore it; or once, if it was verified as it was written (a download).
 */
export class ArchiveFileSource implements RecordSource {
  private stamp: FileStamp | undefined;
  /** An etcd snapshot's first pass, done by verify and reused by records. */
  private readonly memo: SnapshotMemo = {};
  /** What verify found: an etcd snapshot, whose keys come in revision order. */
  private snapshot = false;

  /**
   * `revision`: for an etcd snapshot, the revision to read (default its newest).
   * `verified`: what verifyArchive said of the file for that scope, when it was checked on its way in.
   */
  constructor(
    private readonly path: string,
    private readonly revision?: string,
    private readonly verified?: { scope: string; summary: ArchiveSummary },
  ) {}

  async verify(scope: string, signal?: AbortSignal): Promise<ArchiveSummary> {
    this.stamp = await stampFile(this.path);
    if (this.verified?.scope === scope && this.revision === undefined) {
      this.snapshot = this.verified.summary.format === 'etcd-snapshot';
      return this.verified.summary;
    }
    const summary = await verifyArchive(this.path, scope, signal, this.revision, this.memo);
    this.snapshot = summary.format === 'etcd-snapshot';
    return summary;
  }

  async records(scope: string, onBatch: (puts: Put[]) => Promise<void>, signal?: AbortSignal): Promise<void> {
    // Before the first write too: what verify found (and the snapshot memo) holds only for the file it read.
    if (this.stamp) await checkStamp(this.stamp);
    const scopeKey = Buffer.from(scope);
    // A snapshot's records, in revision order, go through a window that sorts them; an archive's
    // are handed over as the decoder gives them, in place, keeping only what a put needs.
    const window = this.snapshot ? new KeyOrderWindow(onBatch) : undefined;
    let puts: Put[] = [];
    await scanArchive(
      this.path,
      window
        ? () => (window.full ? window.flush() : undefined)
        : async () => {
            const chunk = puts;
            puts = [];
            await onBatch(chunk);
          },
      signal,
      (r) => {
        if (!r.hasPrefix(scopeKey)) return;
        if (window) window.add(r);
        else puts.push({ key: r.key(), value: r.value(), lease: r.lease() });
      },
      this.revision,
      this.memo,
    );
    await window?.flush();
    if (this.stamp) await checkStamp(this.stamp);
  }
}
