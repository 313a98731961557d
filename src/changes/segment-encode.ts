import { createHash } from 'node:crypto';
import { FRAME_HEADER } from '../archive/native-format';
import { writeInt64 } from '../util/int64';
import { type ChangeEvent, CLOCK_BYTES, EventLayout, EventOp, LEASE_BYTES, SEGMENT_MAGIC, SEGMENT_VERSION, SegmentFrame, type SegmentHeader, type SegmentLease, type SegmentTrailer } from './segment-format';

function frame(type: SegmentFrame, body: Buffer): Buffer {
  const head = Buffer.allocUnsafe(FRAME_HEADER);
  head[0] = type;
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** A frame whose body is written in place: one allocation per event, since a follower under load makes thousands a second. */
function frameOf(type: SegmentFrame, bodyLength: number): { frame: Buffer; body: Buffer } {
  const f = Buffer.allocUnsafe(FRAME_HEADER + bodyLength);
  f[0] = type;
  f.writeUInt32BE(bodyLength, 1);
  return { frame: f, body: f.subarray(FRAME_HEADER) };
}

/** Collects a segment's frames in memory (a segment is bounded by the follower's size limit) and seals it. */
export class SegmentBuilder {
  private readonly frames: Buffer[] = [];
  private size = 0;
  private eventCount = 0;
  private clockCount = 0;
  /** Lease ids the events point at, in the order first seen. */
  readonly leaseIds = new Set<string>();

  constructor(readonly first: number) {}

  get bytes(): number {
    return this.size;
  }

  get events(): number {
    return this.eventCount;
  }

  private add(f: Buffer): void {
    this.frames.push(f);
    this.size += f.length;
  }

  event(e: ChangeEvent): void {
    const { frame: f, body } = frameOf(SegmentFrame.Event, EventLayout.Fixed + e.key.length + e.value.length);
    body[0] = e.op === 'put' ? EventOp.Put : EventOp.Delete;
    body.writeUInt32BE(e.key.length, EventLayout.KeyLengthAt);
    e.key.copy(body, EventLayout.KeyAt);
    let o = EventLayout.KeyAt + e.key.length;
    for (const n of [e.createRevision, e.modRevision, e.version, e.lease]) {
      writeInt64(body, n, o);
      o += 8;
    }
    e.value.copy(body, o);
    this.add(f);
    this.eventCount++;
    if (e.lease !== '0') this.leaseIds.add(e.lease);
  }

  clock(revision: number, at: number): void {
    const { frame: f, body } = frameOf(SegmentFrame.Clock, CLOCK_BYTES);
    writeInt64(body, String(revision), 0);
    writeInt64(body, String(at), 8);
    this.add(f);
    this.clockCount++;
  }

  /** The whole segment: magic, header, the frames so far, then the leases given and the trailer. */
  seal(header: Omit<SegmentHeader, 'format' | 'firstRevision'>, leases: SegmentLease[], last: number): Buffer {
    const head = Buffer.concat([
      SEGMENT_MAGIC,
      frame(SegmentFrame.Header, Buffer.from(JSON.stringify({ format: SEGMENT_VERSION, ...header, firstRevision: String(this.first) }))),
    ]);
    const leaseFrames = leases.map((l) => {
      const body = Buffer.allocUnsafe(LEASE_BYTES);
      writeInt64(body, l.id, 0);
      writeInt64(body, l.grantedTtl, 8);
      return frame(SegmentFrame.Lease, body);
    });
    const hash = createHash('sha256').update(head);
    for (const f of this.frames) hash.update(f);
    for (const f of leaseFrames) hash.update(f);
    // The last revision lives in the trailer, so the checksum covers it too.
    hash.update(String(last));
    const trailer: SegmentTrailer = { events: this.eventCount, clocks: this.clockCount, leases: leases.length, lastRevision: String(last), sha256: hash.digest('hex') };
    return Buffer.concat([head, ...this.frames, ...leaseFrames, frame(SegmentFrame.Trailer, Buffer.from(JSON.stringify(trailer)))]);
  }
}
