import type { KeyRecord } from '../archive/types';

/**
 * The change segment format, version 1: what segment-encode.ts and
 * segment-decode.ts share. docs/archive-format.md ("Change segments") is
 * the specification; these files and that section change together.
 */
export const SEGMENT_VERSION = 1;
export const SEGMENT_MAGIC_PREFIX = '#etcd-shield-changes v';
export const SEGMENT_MAGIC = Buffer.from(`${SEGMENT_MAGIC_PREFIX}${SEGMENT_VERSION}\n`);

export const enum SegmentFrame {
  Header = 0x48, // 'H'
  Event = 0x45, // 'E'
  Clock = 0x43, // 'C'
  Lease = 0x4c, // 'L'
  Trailer = 0x54, // 'T'
}

/** An event body: u8 op, u32 key length, key, create/mod revision, version, lease (int64s), value. */
export const enum EventLayout {
  OpSize = 1,
  KeyLengthAt = 1,
  KeyAt = 5,
  Int64s = 32,
  Fixed = 5 + 32,
}

export const enum EventOp {
  Put = 1,
  Delete = 2,
}

/** A clock body: revision, unix milliseconds (int64s): by then every revision up to this one was seen. */
export const CLOCK_BYTES = 16;
/** A lease body: id, granted TTL in seconds (int64s). */
export const LEASE_BYTES = 16;

export interface SegmentHeader {
  format: number;
  tool: string;
  clusterId: string;
  prefix: string;
  /** The first revision this segment accounts for (the previous segment's last + 1). */
  firstRevision: string;
  createdAt: string;
}

export interface SegmentTrailer {
  events: number;
  clocks: number;
  leases: number;
  /** Every revision up to this one is accounted for: its events are in this segment or an earlier one. */
  lastRevision: string;
  sha256: string;
}

/** A put or a delete, with the key's fields as the archive keeps them (a delete's value is empty). */
export interface ChangeEvent extends KeyRecord {
  op: 'put' | 'delete';
}

export interface Clock {
  revision: number;
  at: number;
}

export interface SegmentLease {
  id: string;
  grantedTtl: string;
}

export interface Segment {
  header: SegmentHeader;
  /** Where each event's body starts in data, in revision order (read them with EventView). */
  events: number[];
  clocks: Clock[];
  leases: SegmentLease[];
  first: number;
  last: number;
  /** The whole segment as decoded, which the events are views of. */
  data: Buffer;
}
