import type { KeyRecord } from '../archive/types';
import type { Segment } from './segment-format';

interface Final {
  put: boolean;
  record: KeyRecord;
}

/**
 * The net effect of a run of events: per key, its state after the last
 * event seen (a put, or absent). Memory grows with the distinct keys
 * changed, never with the number of events: a key changed a thousand times
 * holds one entry. Values are copied out of the segment so that segments
 * are not kept alive.
 */
export class ChangeFold {
  private readonly state = new Map<string, Final>();
  /** Lease id -> granted TTL, for leases first seen in the change log. */
  readonly leases = new Map<string, string>();
  events = 0;

  constructor(private readonly prefix: Buffer) {}

  /** Applies the events of a segment with modRevision in (after, upTo]. */
  apply(seg: Segment, after: number, upTo: number): void {
    for (const l of seg.leases) this.leases.set(l.id, l.grantedTtl);
    for (const e of seg.events) {
      const rev = Number(e.modRevision);
      if (rev <= after) continue;
      if (rev > upTo) break;
      if (e.key.length < this.prefix.length || this.prefix.compare(e.key, 0, this.prefix.length) !== 0) continue;
      this.events++;
      const key = Buffer.from(e.key);
      this.state.set(key.toString('latin1'), {
        put: e.op === 'put',
        record: { key, value: e.op === 'put' ? Buffer.from(e.value) : Buffer.alloc(0), createRevision: e.createRevision, modRevision: e.modRevision, version: e.version, lease: e.lease },
      });
    }
  }

  get keys(): number {
    return this.state.size;
  }

  /** The final states in ascending byte order of key (latin1 strings compare as their bytes). */
  sorted(): Final[] {
    return [...this.state.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).map((k) => this.state.get(k)!);
  }
}
