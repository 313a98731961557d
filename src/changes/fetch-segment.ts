import { EncryptionError, ArchiveError, CancelledError, ShieldError, StoreError } from '../errors';
import { openStored } from '../pipeline/stages';
import type { ObjectStore } from '../store/types';
import type { SegmentEntry } from './chain';
import { decodeSegment } from './segment-decode';
import type { Segment } from './segment-format';

/** Downloads, decrypts, decompresses and decodes one segment whole, checking it against its name. */
export async function fetchSegment(store: ObjectStore, s: SegmentEntry, identities: string[], signal?: AbortSignal): Promise<Segment> {
  const key = s.object.key;
  const where = `${key} in ${store.url}`;
  if (s.form.encrypted && identities.length === 0) {
    throw new EncryptionError(`change segment ${where} is encrypted with age`, 'give the identity file whose recipient it was encrypted to: --identity FILE');
  }
  const chunks: Buffer[] = [];
  try {
    const plain = await openStored(await store.read(key, signal), { identities, name: `change segment ${where}`, form: s.form });
    for await (const c of plain as AsyncIterable<Buffer>) {
      if (signal?.aborted) throw new CancelledError(`stopped while reading change segment ${where}; nothing was written to etcd`);
      chunks.push(c);
    }
  } catch (err) {
    if (err instanceof ShieldError) throw err;
    throw new StoreError(`cannot read change segment ${where}: ${(err as Error).message}`);
  }
  const seg = decodeSegment(Buffer.concat(chunks), where);
  if (seg.first !== s.first || seg.last !== s.last) {
    throw new ArchiveError(`change segment ${where} holds revisions ${seg.first} to ${seg.last}, not what its name says`, 'the segment was renamed or replaced; it cannot be trusted');
  }
  return seg;
}
