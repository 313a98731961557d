/** One key as the archive holds it. int64s stay decimal strings, as etcd3 gives them. */
export interface KeyRecord {
  key: Buffer;
  value: Buffer;
  createRevision: string;
  modRevision: string;
  version: string;
  /** "0" when the key has no lease. */
  lease: string;
}

/**
 * Key-values to frame, read by index: a page of them needs no object per
 * key (etcd replies are framed straight from the reply's bytes).
 */
export interface RecordTable {
  readonly length: number;
  keyLength(i: number): number;
  valueLength(i: number): number;
  copyKey(i: number, target: Buffer, at: number): number;
  copyValue(i: number, target: Buffer, at: number): number;
  /** Create revision, mod revision, version and lease as four big-endian int64s. */
  writeInt64s(i: number, target: Buffer, at: number): void;
}

/**
 * A record as verify and restore read it: key, value and lease, without the
 * revisions. Decoders may reuse one for every record, so it is valid only
 * while the callback that receives it runs; key() and value() stay valid.
 */
export interface RecordRef {
  readonly keyLength: number;
  readonly valueLength: number;
  hasPrefix(prefix: Buffer): boolean;
  key(): Buffer;
  value(): Buffer;
  /** Copies the key, then the value, into `into` at `at`; returns how many bytes that was. */
  copyKeyValue(into: Buffer, at: number): number;
  /** "0" when the key has no lease. */
  lease(): string;
}

export interface LeaseRecord {
  id: string;
  /** TTL the lease was granted with, in seconds. */
  grantedTtl: string;
  /** Seconds it had left when the backup read it; -1 if it had already expired. */
  remainingTtl: string;
}

export interface ArchiveHeader {
  format: number;
  tool: string;
  revision: string;
  prefix: string;
  clusterId: string;
  memberId: string;
  createdAt: string;
}

export interface ArchiveTrailer {
  records: number;
  leases: number;
  sha256: string;
}

/** etcd-snapshot: a bbolt database as `etcdctl snapshot save` writes it, read in place (src/snapshot). */
export type ArchiveFormat = 'etcd-shield' | 'legacy' | 'etcd-snapshot';

/** What a decoder hands back, in archive order. */
export type ArchiveItem =
  | { kind: 'header'; header: ArchiveHeader }
  | { kind: 'record'; record: KeyRecord }
  | { kind: 'lease'; lease: LeaseRecord }
  | { kind: 'trailer'; trailer: ArchiveTrailer };

/** Push parser: bytes in, items out; throws ArchiveError naming where. */
export interface ArchiveDecoder {
  push(chunk: Buffer): ArchiveItem[];
  /** The input is over; throws if it ended in the wrong place. */
  end(): ArchiveItem[];
}
