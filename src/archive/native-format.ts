/**
 * etcd-shield's own archive format, version 1: what its encoder
 * (native-encode.ts) and decoder (native-decode.ts) share.
 * docs/archive-format.md is the specification; these files and that page
 * change together.
 */
export const FORMAT_VERSION = 1;
export const MAGIC_PREFIX = '#etcd-shield-archive v';
export const MAGIC = Buffer.from(`${MAGIC_PREFIX}${FORMAT_VERSION}\n`);

/** Type byte + u32 body length. */
export const FRAME_HEADER = 5;
/** Larger than any value etcd accepts; a bigger length is corruption, not data. */
export const MAX_FRAME_BYTES = 256 * 1024 * 1024;

export const enum FrameType {
  Header = 0x48, // 'H'
  Record = 0x52, // 'R'
  Lease = 0x4c, // 'L'
  Trailer = 0x54, // 'T'
}

/**
 * A record body: u32 key length, the key, then create_revision,
 * mod_revision, version and lease as int64s, then the value.
 */
export const enum RecordLayout {
  KeyLengthSize = 4,
  Int64s = 32,
  /** A body without its key and value. */
  Fixed = KeyLengthSize + Int64s,
  // Where each int64 lies, counted from the end of the key.
  CreateRevisionAt = 0,
  ModRevisionAt = 8,
  VersionAt = 16,
  LeaseAt = 24,
}

/** A lease body: id, granted TTL and remaining TTL, as int64s. */
export const enum LeaseLayout {
  IdAt = 0,
  GrantedAt = 8,
  RemainingAt = 16,
  Size = 24,
}
