import { createHash } from 'node:crypto';
import { FRAME_HEADER } from '../archive/native-format';
import { BufferPool } from '../io/buffer-pool';
import { writeInt64 } from '../util/int64';
import { type ChangeEvent, CLOCK_BYTES, EventLayout, EventOp, LEASE_BYTES, SEGMENT_MAGIC, SEGMENT_VERSION, SegmentFrame, type SegmentHeader, type SegmentLease, type SegmentTrailer } from './segment-format';

function frame(type: SegmentFrame, body: Buffer): Buffer {
  const head = Buffer.allocUnsafe(FRAME_HEADER);
  head[0] = type;
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** Frames are written into blocks this large, taken from a pool and given back once stored: no garbage per event. */
export const SEGMENT_BLOCK_BYTES = 256 * 1024;

/**
 * Collects a segment's frames in memory (a segment is bounded by the
 * follower's size limit) and seals it. Frames go one after another into
 * blocks from `pool`, so a follower under load makes no object per event
 * for the collector; release() gives the blocks back once the sealed
 * segment is stored.
 */
export class SegmentBuilder {
  private readonly filled: Buffer[] = [];
  private readonly taken: Buffer[] = [];
  private block: Buffer = Buffer.alloc(0);
  private used = 0;
  private size = 0;
  private eventCount = 0;
  private clockCount = 0;
  /** Lease ids the events point at, in the order first seen. */
  readonly leaseIds = new Set<string>();

  constructor(
    readonly first: number,
    private readonly pool = new BufferPool(0),
  ) {}

  get bytes(): number {
    return this.size;
  }

  get events(): number {
    return this.eventCount;
  }

  /** Room for a frame with a body of bodyLength; returns where its body starts in this.block. */
  private frame(type: SegmentFrame, bodyLength: number): number {
    const length = FRAME_HEADER + bodyLength;
    if (this.block.length - this.used < length) {
      if (this.used > 0) this.filled.push(this.block.subarray(0, this.used));
      this.block = this.pool.take(Math.max(length, SEGMENT_BLOCK_BYTES));
      this.taken.push(this.block);
      this.used = 0;
    }
    const at = this.used;
    this.block[at] = type;
    this.block.writeUInt32BE(bodyLength, at + 1);
    this.used += length;
    this.size += length;
    return at + FRAME_HEADER;
  }

  event(e: ChangeEvent): void {
    const body = this.frame(SegmentFrame.Event, EventLayout.Fixed + e.key.length + e.value.length);
    const buf = this.block;
    buf[body] = e.op === 'put' ? EventOp.Put : EventOp.Delete;
    buf.writeUInt32BE(e.key.length, body + EventLayout.KeyLengthAt);
    e.key.copy(buf, body + EventLayout.KeyAt);
    let o = body + EventLayout.KeyAt + e.key.length;
    for (const n of [e.createRevision, e.modRevision, e.version, e.lease]) {
      writeInt64(buf, n, o);
      o += 8;
    }
    e.value.copy(buf, o);
    this.eventCount++;
    if (e.lease !== '0') this.leaseIds.add(e.lease);
  }

  clock(revision: number, at: number): void {
    const body = this.frame(SegmentFrame.Clock, CLOCK_BYTES);
    writeInt64(this.block, String(revision), body);
    writeInt64(this.block, String(at), body + 8);
    this.clockCount++;
  }

  /** The whole segment, in parts: magic, header, the frames so far, then the leases given and the trailer. */
  seal(header: Omit<SegmentHeader, 'format' | 'firstRevision'>, leases: SegmentLease[], last: number): Buffer[] {
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
    const parts = [head, ...this.filled, this.block.subarray(0, this.used), ...leaseFrames];
    const hash = createHash('sha256');
    for (const p of parts) hash.update(p);
    // The last revision lives in the trailer, so the checksum covers it too.
    hash.update(String(last));
    const trailer: SegmentTrailer = { events: this.eventCount, clocks: this.clockCount, leases: leases.length, lastRevision: String(last), sha256: hash.digest('hex') };
    return [...parts, frame(SegmentFrame.Trailer, Buffer.from(JSON.stringify(trailer)))];
  }

  /** Gives the blocks back to the pool: the sealed parts are invalid after. */
  release(): void {
    for (const b of this.taken) this.pool.give(b);
    this.taken.length = 0;
  }
}
