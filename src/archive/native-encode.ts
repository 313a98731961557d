import { createHash, Hash } from 'node:crypto';
import { writeInt64 } from '../util/int64';
import { FORMAT_VERSION, FRAME_HEADER, FrameType, LeaseLayout, MAGIC, RecordLayout } from './native-format';
import type { ArchiveHeader, ArchiveTrailer, LeaseRecord, RecordTable } from './types';

function jsonFrame(type: FrameType, value: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(value));
  const frame = Buffer.allocUnsafe(FRAME_HEADER + body.length);
  frame.writeUInt8(type, 0);
  frame.writeUInt32BE(body.length, 1);
  body.copy(frame, FRAME_HEADER);
  return frame;
}

/** Builds the archive's bytes and keeps the running checksum for the trailer. */
export class NativeEncoder {
  private readonly hash: Hash = createHash('sha256');
  private recordCount = 0;
  private leaseCount = 0;

  private track(buf: Buffer): Buffer {
    this.hash.update(buf);
    return buf;
  }

  start(header: Omit<ArchiveHeader, 'format'>): Buffer {
    return this.track(Buffer.concat([MAGIC, jsonFrame(FrameType.Header, { format: FORMAT_VERSION, ...header })]));
  }

  /**
   * Encodes records [from, to) of a table into one buffer: `into` when it is
   * large enough (the caller reuses it once written), else a new one.
   */
  records(table: RecordTable, into?: Buffer, from = 0, to = table.length): Buffer {
    const size = recordsSize(table, from, to);
    const buf = into && into.length >= size ? into.subarray(0, size) : Buffer.allocUnsafe(size);
    let o = 0;
    for (let i = from; i < to; i++) {
      const keyLength = table.keyLength(i);
      buf[o] = FrameType.Record;
      buf.writeUInt32BE(RecordLayout.Fixed + keyLength + table.valueLength(i), o + 1);
      buf.writeUInt32BE(keyLength, o + FRAME_HEADER);
      o += FRAME_HEADER + RecordLayout.KeyLengthSize;
      o += table.copyKey(i, buf, o);
      table.writeInt64s(i, buf, o);
      o += RecordLayout.Int64s;
      o += table.copyValue(i, buf, o);
    }
    this.recordCount += to - from;
    return this.track(buf);
  }

  lease(l: LeaseRecord): Buffer {
    const buf = Buffer.allocUnsafe(FRAME_HEADER + LeaseLayout.Size);
    buf[0] = FrameType.Lease;
    buf.writeUInt32BE(LeaseLayout.Size, 1);
    writeInt64(buf, l.id, FRAME_HEADER + LeaseLayout.IdAt);
    writeInt64(buf, l.grantedTtl, FRAME_HEADER + LeaseLayout.GrantedAt);
    writeInt64(buf, l.remainingTtl, FRAME_HEADER + LeaseLayout.RemainingAt);
    this.leaseCount++;
    return this.track(buf);
  }

  finish(): Buffer {
    const trailer: ArchiveTrailer = { records: this.recordCount, leases: this.leaseCount, sha256: this.hash.digest('hex') };
    return jsonFrame(FrameType.Trailer, trailer);
  }
}

const recordSize = (table: RecordTable, i: number) => FRAME_HEADER + RecordLayout.Fixed + table.keyLength(i) + table.valueLength(i);

/** Bytes that records() takes for records [from, to) of a table. */
export function recordsSize(table: RecordTable, from = 0, to = table.length): number {
  let size = 0;
  for (let i = from; i < to; i++) size += recordSize(table, i);
  return size;
}

/**
 * The slice of records that starts at `from`: where it ends and the bytes
 * records() takes for it. It holds at least one record, and stays within
 * maxBytes when it can.
 */
export function nextSlice(table: RecordTable, from: number, maxBytes: number): { to: number; bytes: number } {
  let bytes = recordSize(table, from);
  let to = from + 1;
  for (; to < table.length; to++) {
    const next = recordSize(table, to);
    if (bytes + next > maxBytes) break;
    bytes += next;
  }
  return { to, bytes };
}
