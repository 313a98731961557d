import { createHash } from 'node:crypto';
import { FRAME_HEADER } from '../archive/native-format';
import { ArchiveError } from '../errors';
import { readInt64 } from '../util/int64';
import {
  type Clock,
  CLOCK_BYTES,
  EventLayout,
  EventOp,
  LEASE_BYTES,
  SEGMENT_MAGIC,
  SEGMENT_MAGIC_PREFIX,
  SEGMENT_VERSION,
  type Segment,
  SegmentFrame,
  type SegmentHeader,
  type SegmentLease,
} from './segment-format';

/**
 * Reads a whole segment and checks it: magic, one header, events in
 * revision order within the segment's range, clocks ascending, leases, a
 * trailer whose counts and sha256 match, nothing after it. Throws an
 * ArchiveError naming the segment and the defect.
 */
export function decodeSegment(buf: Buffer, name: string): Segment {
  const fail = (what: string) => new ArchiveError(`change segment ${name}: ${what}`, 'the segment is damaged; restore to a point before it, or from a backup taken after it');
  if (buf.length < SEGMENT_MAGIC.length || !buf.subarray(0, SEGMENT_MAGIC.length).equals(SEGMENT_MAGIC)) {
    const line = buf.subarray(0, 40).toString('latin1');
    throw fail(line.startsWith(SEGMENT_MAGIC_PREFIX) ? `unknown format version (${JSON.stringify(line.split('\n')[0])}); this etcd-shield reads version ${SEGMENT_VERSION}` : 'not an etcd-shield change segment (bad first line)');
  }
  let o = SEGMENT_MAGIC.length;
  let header: SegmentHeader | undefined;
  const events: number[] = [];
  const view = new EventView(buf);
  const clocks: Clock[] = [];
  const leases: SegmentLease[] = [];
  let lastEventRev = 0;
  while (o < buf.length) {
    if (buf.length - o < FRAME_HEADER) throw fail(`truncated inside a frame header at byte ${o}`);
    const type = buf[o]!;
    const len = buf.readUInt32BE(o + 1);
    const start = o + FRAME_HEADER;
    const end = start + len;
    if (end > buf.length) throw fail(`truncated: the frame at byte ${o} needs ${len} bytes, ${buf.length - start} remain`);
    const body = buf.subarray(start, end);
    const at = `at byte ${o}`;
    if (!header) {
      if (type !== SegmentFrame.Header) throw fail(`expected the header ${at}`);
      header = parseHeader(body, fail);
    } else if (type === SegmentFrame.Event) {
      if (leases.length) throw fail(`an event after the leases ${at}`);
      checkEvent(body, at, fail);
      const rev = view.at(start).modRevision;
      if (rev < lastEventRev || rev < Number(header.firstRevision)) throw fail(`event ${at} at revision ${rev} is out of order`);
      lastEventRev = rev;
      events.push(start);
    } else if (type === SegmentFrame.Clock) {
      if (len !== CLOCK_BYTES || leases.length) throw fail(`a bad clock frame ${at}`);
      const c = { revision: Number(readInt64(body, 0)), at: Number(readInt64(body, 8)) };
      const prev = clocks[clocks.length - 1];
      if (prev && (c.revision < prev.revision || c.at < prev.at)) throw fail(`clock ${at} goes backwards`);
      clocks.push(c);
    } else if (type === SegmentFrame.Lease) {
      if (len !== LEASE_BYTES) throw fail(`lease ${at} has ${len} bytes, not ${LEASE_BYTES}`);
      leases.push({ id: readInt64(body, 0), grantedTtl: readInt64(body, 8) });
    } else if (type === SegmentFrame.Trailer) {
      if (end !== buf.length) throw fail(`${buf.length - end} unexpected bytes after the trailer`);
      const t = parseJson(body, 'trailer', fail);
      if (t.events !== events.length || t.clocks !== clocks.length || t.leases !== leases.length) {
        throw fail(`the trailer counts ${String(t.events)} events, ${String(t.clocks)} clocks and ${String(t.leases)} leases, but the segment holds ${events.length}, ${clocks.length} and ${leases.length}`);
      }
      if (t.sha256 !== createHash('sha256').update(buf.subarray(0, o)).update(String(t.lastRevision)).digest('hex')) throw fail('the checksum does not match: the segment was altered or damaged');
      const first = Number(header.firstRevision);
      const last = Number(t.lastRevision);
      if (typeof t.lastRevision !== 'string' || !(last >= first - 1) || lastEventRev > last) throw fail(`the trailer's last revision ${String(t.lastRevision)} does not cover its events`);
      if (clocks.length && clocks[clocks.length - 1]!.revision > last) throw fail('a clock lies past the last revision');
      return { header, events, clocks, leases, first, last, data: buf };
    } else {
      throw fail(`unknown frame type 0x${type.toString(16)} ${at}`);
    }
    o = end;
  }
  throw fail(header ? `truncated: no trailer after ${events.length} events (a cut-off copy)` : 'truncated before its header');
}

function parseJson(body: Buffer, what: string, fail: (m: string) => Error): Record<string, unknown> {
  try {
    const v = JSON.parse(body.toString('utf8'));
    if (v && typeof v === 'object' && !Array.isArray(v)) return v;
  } catch {
    // reported below
  }
  throw fail(`the ${what} is not valid JSON`);
}

function parseHeader(body: Buffer, fail: (m: string) => Error): SegmentHeader {
  const h = parseJson(body, 'header', fail);
  for (const k of ['tool', 'clusterId', 'prefix', 'firstRevision', 'createdAt']) {
    if (typeof h[k] !== 'string') throw fail(`the header lacks "${k}"`);
  }
  if (h.format !== SEGMENT_VERSION) throw fail(`the header says format ${String(h.format)}, not ${SEGMENT_VERSION}`);
  if (!/^\d{1,16}$/.test(h.firstRevision as string)) throw fail('the header has a non-numeric firstRevision');
  return h as unknown as SegmentHeader;
}

function checkEvent(body: Buffer, at: string, fail: (m: string) => Error): void {
  if (body.length < EventLayout.Fixed) throw fail(`event ${at} is too short`);
  const op = body[0];
  if (op !== EventOp.Put && op !== EventOp.Delete) throw fail(`event ${at} has an unknown operation ${String(op)}`);
  const keyLen = body.readUInt32BE(EventLayout.KeyLengthAt);
  if (keyLen === 0 || EventLayout.Fixed + keyLen > body.length) throw fail(`event ${at} has an impossible key length`);
}

const LOW_RANGE = 2 ** 32;

/**
 * One event of a decoded segment, read in place (no object per event): at()
 * moves it to the event whose body starts there (Segment.events). key() and
 * value() are views of the segment's bytes.
 */
export class EventView {
  private start = 0;
  private keyEnd = 0;
  private end = 0;

  constructor(private readonly data: Buffer) {}

  at(start: number): this {
    this.start = start;
    this.keyEnd = start + EventLayout.KeyAt + this.data.readUInt32BE(start + EventLayout.KeyLengthAt);
    this.end = start + this.data.readUInt32BE(start - FRAME_HEADER + 1);
    return this;
  }

  get isPut(): boolean {
    return this.data[this.start] === EventOp.Put;
  }

  key(): Buffer {
    return this.data.subarray(this.start + EventLayout.KeyAt, this.keyEnd);
  }

  /** Revisions stay far below 2^53. */
  get modRevision(): number {
    return this.data.readUInt32BE(this.keyEnd + 8) * LOW_RANGE + this.data.readUInt32BE(this.keyEnd + 12);
  }

  /** "0" when the key has no lease. */
  lease(): string {
    return readInt64(this.data, this.keyEnd + 24);
  }

  /** Where the value starts in the segment's bytes. */
  get valueAt(): number {
    return this.keyEnd + EventLayout.Int64s;
  }

  get valueLength(): number {
    return this.end - this.valueAt;
  }

  value(): Buffer {
    return this.data.subarray(this.valueAt, this.end);
  }
}
