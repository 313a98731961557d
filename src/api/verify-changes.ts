import { readCatalogue } from '../catalogue/catalogue';
import { changeCatalogue, recoveryWindows, type RecoveryWindow } from '../changes/chain';
import { SegmentFetcher } from '../changes/fetch-segment';
import { EncryptionError, ShieldError } from '../errors';
import type { OperationOptions } from './options';
import { type StoreOptions, type StoreRef, withStore } from './store-ref';

export interface ChangeLogReport {
  store: string;
  segments: number;
  events: number;
  /** Segments that cannot be read, decoded or do not say what their names say. */
  failed: {
    key: string;
    message: string;
    /** It could not be decrypted with the identities given, so it was not checked (not known to be damaged). */
    undecrypted: boolean;
  }[];
  /** Places where no segment continues the one before (a gap, or a segment that failed). */
  breaks: { after: number; next: number }[];
  windows: RecoveryWindow[];
}

/** Downloads and checks every change segment (checksum, counts, order, range) and the chain they make. */
export async function verifyChanges(from: StoreRef, opts: StoreOptions & Pick<OperationOptions, 'signal'> & { identities?: string[] } = {}): Promise<ChangeLogReport> {
  return withStore(from, opts, async (store) => {
    const objects = await store.list(opts.signal);
    const cat = await readCatalogue(store, opts.signal, objects);
    const { segments } = changeCatalogue(objects);
    const failed: ChangeLogReport['failed'] = [];
    let events = 0;
    const good = [];
    const fetcher = new SegmentFetcher(store, opts.identities ?? [], opts.signal);
    for (const s of segments) {
      try {
        events += (await fetcher.fetch(s)).events.length;
        good.push(s);
      } catch (err) {
        if (!(err instanceof ShieldError) || err.kind === 'cancelled') throw err;
        failed.push({ key: s.object.key, message: err.message, undecrypted: err instanceof EncryptionError });
      }
    }
    const breaks: ChangeLogReport['breaks'] = [];
    let reach = 0;
    for (const s of good) {
      if (reach && s.first > reach + 1) breaks.push({ after: reach, next: s.first });
      reach = Math.max(reach, s.last);
    }
    return { store: store.url, segments: segments.length, events, failed, breaks, windows: recoveryWindows(cat.backups, good) };
  });
}
