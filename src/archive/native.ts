import { createHash, Hash } from 'node:crypto';
import { ArchiveError } from '../errors';
import { hasPrefix, showKey } from './keys';
import type {
  ArchiveDecoder,
  ArchiveHeader,
  ArchiveItem,
  ArchiveTrailer,
  KeyRecord,
  LeaseRecord,
  RecordTable,
} from './types';

/**
 * etcd-shield's own archive format, version 1. docs/archive-format.md is the
 * specification; this file and that page change together.
 */
export const FORMAT_VERSION = 1;
export const MAGIC_PREFIX = '#etcd-shield-archive v';
export const MAGIC = Buffer.from(`${MAGIC_PREFIX}${FORMAT_VERSION}\n`);

const FRAME_HEADER = 5; // type byte + u32 length
const MAX_MAGIC_LINE = 64;
const RECORD_FIXED = 4 + 4 * 8; // key length + four int64s
const LEASE_SIZE = 3 * 8;
/** Larger than any value etcd accepts; a bigger length is corruption, not data. */
export const MAX_FRAME_BYTES = 256 * 1024 * 1024;

const enum FrameType {
  Header = 0x48, // 'H'
  Record = 0x52, // 'R'
  Lease = 0x4c, // 'L'
  Trailer = 0x54, // 'T'
}

// Revisions and versions fit in a double in practice; BigInt only for the rest
// (lease ids use all 63 bits). This is on the per-record path, hence the care.
const SMALL = /^\d{1,15}$/;

function writeInt64(buf: Buffer, decimal: string, at: number): void {
  if (SMALL.test(decimal)) {
    const n = Number(decimal);
    buf.writeUInt32BE(Math.floor(n / 0x1_0000_0000), at);
    buf.writeUInt32BE(n % 0x1_0000_0000, at + 4);
  } else {
    buf.writeBigInt64BE(BigInt(decimal), at);
  }
}

function readInt64(buf: Buffer, at: number): string {
  const hi = buf.readUInt32BE(at);
  if (hi < 0x200000) return String(hi * 0x1_0000_0000 + buf.readUInt32BE(at + 4));
  return buf.readBigInt64BE(at).toString();
}

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

  /** Encodes a batch of records into one buffer: one allocation per page. */
  records(records: readonly KeyRecord[] | RecordTable): Buffer {
    const table = isTable(records) ? records : tableOf(records);
    let size = 0;
    for (let i = 0; i < table.length; i++) size += FRAME_HEADER + RECORD_FIXED + table.keyLength(i) + table.valueLength(i);
    const buf = Buffer.allocUnsafe(size);
    let o = 0;
    for (let i = 0; i < table.length; i++) {
      const keyLength = table.keyLength(i);
      buf[o] = FrameType.Record;
      buf.writeUInt32BE(RECORD_FIXED + keyLength + table.valueLength(i), o + 1);
      buf.writeUInt32BE(keyLength, o + FRAME_HEADER);
      o += FRAME_HEADER + 4;
      o += table.copyKey(i, buf, o);
      table.writeInt64s(i, buf, o);
      o += 32;
      o += table.copyValue(i, buf, o);
    }
    this.recordCount += table.length;
    return this.track(buf);
  }

  lease(l: LeaseRecord): Buffer {
    const buf = Buffer.allocUnsafe(FRAME_HEADER + LEASE_SIZE);
    buf[0] = FrameType.Lease;
    buf.writeUInt32BE(LEASE_SIZE, 1);
    writeInt64(buf, l.id, 5);
    writeInt64(buf, l.grantedTtl, 13);
    writeInt64(buf, l.remainingTtl, 21);
    this.leaseCount++;
    return this.track(buf);
  }

  finish(): Buffer {
    const trailer: ArchiveTrailer = { records: this.recordCount, leases: this.leaseCount, sha256: this.hash.digest('hex') };
    return jsonFrame(FrameType.Trailer, trailer);
  }
}

const isTable = (r: readonly KeyRecord[] | RecordTable): r is RecordTable => !Array.isArray(r);

function tableOf(records: readonly KeyRecord[]): RecordTable {
  return {
    length: records.length,
    keyLength: (i) => records[i]!.key.length,
    valueLength: (i) => records[i]!.value.length,
    copyKey: (i, target, at) => records[i]!.key.copy(target, at),
    copyValue: (i, target, at) => records[i]!.value.copy(target, at),
    writeInt64s: (i, target, at) => {
      const r = records[i]!;
      writeInt64(target, r.createRevision, at);
      writeInt64(target, r.modRevision, at + 8);
      writeInt64(target, r.version, at + 16);
      writeInt64(target, r.lease, at + 24);
    },
  };
}

type Stage = 'magic' | 'header' | 'records' | 'leases' | 'done';

/**
 * Streaming decoder that checks structure as it goes: magic, one header,
 * records in strictly ascending key order, leases, then a trailer whose count
 * and sha256 match, and nothing after it.
 */
export class NativeDecoder implements ArchiveDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private offset = 0; // archive offset of chunks[0][0]
  private stage: Stage = 'magic';
  private readonly hash = createHash('sha256');
  private records = 0;
  private leases = 0;
  private lastKey: Buffer | undefined;
  private prefix = Buffer.alloc(0);

  push(chunk: Buffer): ArchiveItem[] {
    if (chunk.length === 0) return [];
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    return this.drain();
  }

  end(): ArchiveItem[] {
    const items = this.drain();
    if (this.stage === 'done') return items;
    if (this.stage === 'magic') throw this.error('the archive ends before its first line is complete');
    if (this.buffered > 0) {
      const pending = this.peekFrameLength();
      throw this.error(
        pending === undefined
          ? `the archive is truncated: it ends inside a frame header at byte ${this.offset}`
          : `the archive is truncated: the frame at byte ${this.offset} needs ${pending} bytes but only ${this.buffered} remain`,
      );
    }
    throw this.error(
      `the archive is truncated: no trailer after ${this.records} records (an interrupted backup, or a cut-off copy)`,
    );
  }

  private error(message: string): ArchiveError {
    return new ArchiveError(message, 'use an intact archive; `etcd-shield verify` checks one without touching etcd');
  }

  private peekFrameLength(): number | undefined {
    const head = this.take(FRAME_HEADER, false);
    return head ? FRAME_HEADER + head.readUInt32BE(1) : undefined;
  }

  /** Returns the first n buffered bytes (joined if needed), optionally consuming them. */
  private take(n: number, consume: boolean): Buffer | undefined {
    if (this.buffered < n) return undefined;
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks, this.buffered)];
    const first = this.chunks[0]!;
    const out = first.subarray(0, n);
    if (consume) {
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      this.offset += n;
    }
    return out;
  }

  private drain(): ArchiveItem[] {
    const items: ArchiveItem[] = [];
    if (this.stage === 'magic' && this.buffered > 0) {
      // Judge the first line by its bytes, the same however the input is split.
      const head = this.take(Math.min(this.buffered, MAGIC_PREFIX.length), false)!;
      if (head.toString('latin1') !== MAGIC_PREFIX.slice(0, head.length)) {
        throw this.error('this is not an etcd-shield archive (bad first line)');
      }
      const nl = this.findNewline();
      if (nl < 0) {
        if (this.buffered > MAX_MAGIC_LINE) throw this.error('this is not an etcd-shield archive (no header line)');
        return items;
      }
      const line = this.take(nl + 1, true)!;
      this.checkMagic(line.toString('latin1'));
      this.hash.update(line);
      this.stage = 'header';
    }
    while (this.stage !== 'done') {
      const len = this.peekFrameLength();
      if (len === undefined) break;
      if (len - FRAME_HEADER > MAX_FRAME_BYTES) {
        throw this.error(`the frame at byte ${this.offset} claims ${len - FRAME_HEADER} bytes, more than any etcd value; the archive is corrupt`);
      }
      const at = this.offset;
      const frame = this.take(len, true);
      if (!frame) break;
      items.push(this.decodeFrame(frame, at));
    }
    if (this.stage === 'done' && this.buffered > 0) {
      throw this.error(`the archive has ${this.buffered} unexpected bytes after its trailer at byte ${this.offset}`);
    }
    return items;
  }

  private findNewline(): number {
    let seen = 0;
    for (const c of this.chunks) {
      const i = c.indexOf(0x0a);
      if (i >= 0) return seen + i;
      seen += c.length;
    }
    return -1;
  }

  private checkMagic(line: string): void {
    const digits = line.slice(MAGIC_PREFIX.length, -1);
    const version = /^\d{1,6}$/.test(digits) ? Number(digits) : NaN;
    if (version !== FORMAT_VERSION) {
      throw this.error(
        Number.isInteger(version) && version > FORMAT_VERSION
          ? `the archive is format version ${version}; this etcd-shield reads version ${FORMAT_VERSION}: upgrade etcd-shield`
          : `the archive's first line names an unknown format version (${JSON.stringify(line.trim())})`,
      );
    }
  }

  private decodeFrame(frame: Buffer, at: number): ArchiveItem {
    const type = frame[0];
    const body = frame.subarray(FRAME_HEADER);
    const where = `at byte ${at}`;
    if (this.stage === 'header') {
      if (type !== FrameType.Header) throw this.error(`expected the header frame ${where}, found ${frameName(type)}`);
      this.hash.update(frame);
      this.stage = 'records';
      return { kind: 'header', header: this.parseHeader(body, where) };
    }
    if (type === FrameType.Record && this.stage === 'records') {
      this.hash.update(frame);
      return { kind: 'record', record: this.parseRecord(body, where) };
    }
    // The first lease, or the trailer, ends the records.
    if (type === FrameType.Lease) {
      this.hash.update(frame);
      this.stage = 'leases';
      return { kind: 'lease', lease: this.parseLease(body, where) };
    }
    if (type === FrameType.Trailer) {
      this.stage = 'done';
      return { kind: 'trailer', trailer: this.parseTrailer(body, where) };
    }
    throw this.error(`unexpected ${frameName(type)} ${where} (after record ${this.records}, lease ${this.leases})`);
  }

  private parseJson(body: Buffer, what: string, where: string): Record<string, unknown> {
    try {
      const v = JSON.parse(body.toString('utf8'));
      if (v && typeof v === 'object' && !Array.isArray(v)) return v;
    } catch {
      // reported below
    }
    throw this.error(`the ${what} ${where} is not valid JSON`);
  }

  private parseHeader(body: Buffer, where: string): ArchiveHeader {
    const h = this.parseJson(body, 'header', where);
    const strings = ['tool', 'revision', 'prefix', 'clusterId', 'memberId', 'createdAt'] as const;
    for (const k of strings) {
      if (typeof h[k] !== 'string') throw this.error(`the header ${where} lacks "${k}"`);
    }
    if (h.format !== FORMAT_VERSION) throw this.error(`the header ${where} says format ${String(h.format)}, not ${FORMAT_VERSION}`);
    for (const k of ['revision', 'clusterId', 'memberId'] as const) {
      if (!/^\d{1,20}$/.test(h[k] as string)) throw this.error(`the header ${where} has a non-numeric "${k}"`);
    }
    this.prefix = Buffer.from(h.prefix as string);
    return h as unknown as ArchiveHeader;
  }

  private parseRecord(body: Buffer, where: string): KeyRecord {
    const n = this.records + 1;
    if (body.length < RECORD_FIXED) throw this.error(`record ${n} ${where} is too short (${body.length} bytes)`);
    const keyLen = body.readUInt32BE(0);
    if (keyLen === 0 || 4 + keyLen + 32 > body.length) {
      throw this.error(`record ${n} ${where} has an impossible key length (${keyLen} of ${body.length} bytes)`);
    }
    const key = body.subarray(4, 4 + keyLen);
    if (!hasPrefix(key, this.prefix)) {
      throw this.error(`record ${n} ${where} (key ${showKey(key)}) lies outside the archive's prefix ${JSON.stringify(this.prefix.toString())}`);
    }
    if (this.lastKey && Buffer.compare(this.lastKey, key) >= 0) {
      throw this.error(`record ${n} ${where} (key ${showKey(key)}) is out of order or repeated; keys must ascend`);
    }
    const o = 4 + keyLen;
    const record: KeyRecord = {
      key,
      createRevision: readInt64(body, o),
      modRevision: readInt64(body, o + 8),
      version: readInt64(body, o + 16),
      lease: readInt64(body, o + 24),
      value: body.subarray(o + 32),
    };
    this.lastKey = key;
    this.records = n;
    return record;
  }

  private parseLease(body: Buffer, where: string): LeaseRecord {
    if (body.length !== LEASE_SIZE) throw this.error(`lease ${this.leases + 1} ${where} has ${body.length} bytes, not ${LEASE_SIZE}`);
    this.leases++;
    return {
      id: readInt64(body, 0),
      grantedTtl: readInt64(body, 8),
      remainingTtl: readInt64(body, 16),
    };
  }

  private parseTrailer(body: Buffer, where: string): ArchiveTrailer {
    const t = this.parseJson(body, 'trailer', where);
    if (t.records !== this.records || t.leases !== this.leases) {
      throw this.error(
        `the trailer ${where} counts ${String(t.records)} records and ${String(t.leases)} leases, but the archive holds ${this.records} and ${this.leases}`,
      );
    }
    const actual = this.hash.digest('hex');
    if (t.sha256 !== actual) throw this.error('the checksum does not match: the archive was altered or damaged');
    return t as unknown as ArchiveTrailer;
  }
}

function frameName(type: number | undefined): string {
  const names: Record<number, string> = { 0x48: 'header', 0x52: 'record', 0x4c: 'lease', 0x54: 'trailer' };
  return type !== undefined && names[type] ? `a ${names[type]} frame` : `an unknown frame type (0x${(type ?? 0).toString(16)})`;
}
