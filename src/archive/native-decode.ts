import { createHash } from 'node:crypto';
import { ArchiveError } from '../errors';
import { readInt64 } from '../util/int64';
import { showKey } from './keys';
import { FORMAT_VERSION, FRAME_HEADER, FrameType, LeaseLayout, MAGIC_PREFIX, MAX_FRAME_BYTES, RecordLayout } from './native-format';
import type { ArchiveDecoder, ArchiveHeader, ArchiveItem, ArchiveTrailer, KeyRecord, LeaseRecord, RecordRef } from './types';

/** A first line longer than this is not ours. */
const MAX_MAGIC_LINE = 64;

type Stage = 'magic' | 'header' | 'records' | 'leases' | 'done';

const EMPTY: Buffer = Buffer.alloc(0);

/**
 * One record read in place from the archive's bytes, without building a
 * KeyRecord. The decoder reuses a single view, so it is valid only while the
 * visitor that receives it runs; key() and value() are views that stay valid.
 */
class NativeRecordView implements RecordRef {
  buf = EMPTY;
  keyStart = 0;
  /** The four int64s follow the key; the value follows them up to end. */
  keyEnd = 0;
  end = 0;

  get keyLength(): number {
    return this.keyEnd - this.keyStart;
  }

  get valueLength(): number {
    return this.end - this.keyEnd - RecordLayout.Int64s;
  }

  hasPrefix(prefix: Buffer): boolean {
    const n = prefix.length;
    return this.keyLength >= n && this.buf.compare(prefix, 0, n, this.keyStart, this.keyStart + n) === 0;
  }

  key(): Buffer {
    return this.buf.subarray(this.keyStart, this.keyEnd);
  }

  value(): Buffer {
    return this.buf.subarray(this.keyEnd + RecordLayout.Int64s, this.end);
  }

  copyKeyValue(into: Buffer, at: number): number {
    const k = this.buf.copy(into, at, this.keyStart, this.keyEnd);
    return k + this.buf.copy(into, at + k, this.keyEnd + RecordLayout.Int64s, this.end);
  }

  lease(): string {
    return readInt64(this.buf, this.keyEnd + RecordLayout.LeaseAt);
  }

  toRecord(): KeyRecord {
    const o = this.keyEnd;
    return {
      key: this.key(),
      createRevision: readInt64(this.buf, o + RecordLayout.CreateRevisionAt),
      modRevision: readInt64(this.buf, o + RecordLayout.ModRevisionAt),
      version: readInt64(this.buf, o + RecordLayout.VersionAt),
      lease: this.lease(),
      value: this.value(),
    };
  }
}

/**
 * Streaming decoder that checks structure as it goes: magic, one header,
 * records in strictly ascending key order, leases, then a trailer whose count
 * and sha256 match, and nothing after it.
 *
 * Frames are read in place from the input chunks; only a frame that spans
 * chunks is copied. With onRecord, records go to it as they are read instead
 * of becoming items, so a pass that needs only some fields builds no objects.
 */
export class NativeDecoder implements ArchiveDecoder {
  // Unconsumed input: chunks[0] from pos on, then the other chunks.
  private chunks: Buffer[] = [];
  private pos = 0;
  private buffered = 0;
  private offset = 0; // archive offset of the next unconsumed byte
  /** Where the bytes that peek() or consume() returned start in their buffer. */
  private at = 0;
  // The checksum covers everything before the trailer; it is fed consumed runs
  // of chunks[0] (hashedTo..pos), about once per chunk rather than per frame.
  private readonly hash = createHash('sha256');
  private hashedTo = 0;
  private hashing = true;
  private stage: Stage = 'magic';
  private records = 0;
  private leases = 0;
  private readonly view = new NativeRecordView();
  private lastKey = { buf: EMPTY, start: 0, end: -1 }; // end < 0: no record yet
  private prefix = EMPTY;

  constructor(private readonly onRecord?: (record: RecordRef) => void) {}

  push(chunk: Buffer): ArchiveItem[] {
    if (chunk.length === 0) return [];
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const items = this.drain();
    this.hashConsumed();
    return items;
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
    const head = this.peek(FRAME_HEADER);
    return head ? FRAME_HEADER + head.readUInt32BE(this.at + 1) : undefined;
  }

  /** The next n bytes, from this.at on, without consuming them; undefined until all are buffered. */
  private peek(n: number): Buffer | undefined {
    if (this.buffered < n) return undefined;
    const first = this.chunks[0]!;
    if (first.length - this.pos >= n) {
      this.at = this.pos;
      return first;
    }
    this.at = 0;
    return this.joined(n);
  }

  /** Consumes the next n bytes (all buffered); returns the buffer holding them from this.at on. */
  private consume(n: number): Buffer {
    const buf = this.peek(n)!;
    for (let left = n; left > 0; ) {
      const step = Math.min(left, this.chunks[0]!.length - this.pos);
      this.pos += step;
      this.buffered -= step;
      this.offset += step;
      left -= step;
      if (this.pos === this.chunks[0]!.length) {
        this.hashConsumed();
        this.chunks.shift();
        this.pos = 0;
        this.hashedTo = 0;
      }
    }
    return buf;
  }

  /** Copies the next n bytes, which span chunks, into one buffer. */
  private joined(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0, from = this.pos, filled = 0; filled < n; i++, from = 0) {
      const c = this.chunks[i]!;
      filled += c.copy(out, filled, from, Math.min(c.length, from + n - filled));
    }
    return out;
  }

  private hashConsumed(): void {
    if (this.hashing && this.pos > this.hashedTo) this.hash.update(this.chunks[0]!.subarray(this.hashedTo, this.pos));
    this.hashedTo = this.pos;
  }

  private drain(): ArchiveItem[] {
    const items: ArchiveItem[] = [];
    if (this.stage === 'magic' && this.buffered > 0) {
      // Judge the first line by its bytes, the same however the input is split.
      const n = Math.min(this.buffered, MAGIC_PREFIX.length);
      const head = this.peek(n)!;
      if (head.toString('latin1', this.at, this.at + n) !== MAGIC_PREFIX.slice(0, n)) {
        throw this.error('this is not an etcd-shield archive (bad first line)');
      }
      const nl = this.findNewline();
      if (nl < 0) {
        if (this.buffered > MAX_MAGIC_LINE) throw this.error('this is not an etcd-shield archive (no header line)');
        return items;
      }
      const line = this.consume(nl + 1);
      this.checkMagic(line.toString('latin1', this.at, this.at + nl + 1));
      this.stage = 'header';
    }
    while (this.stage !== 'done') {
      const head = this.peek(FRAME_HEADER);
      if (!head) break;
      const type = head[this.at]!;
      const bodyLength = head.readUInt32BE(this.at + 1);
      if (bodyLength > MAX_FRAME_BYTES) {
        throw this.error(`the frame at byte ${this.offset} claims ${bodyLength} bytes, more than any etcd value; the archive is corrupt`);
      }
      const length = FRAME_HEADER + bodyLength;
      if (this.buffered < length) break;
      const at = this.offset;
      if (type === FrameType.Trailer) {
        // The trailer holds the checksum, so it is not part of it.
        this.hashConsumed();
        this.hashing = false;
      }
      const buf = this.consume(length);
      const item = this.decodeFrame(type, buf, this.at + FRAME_HEADER, this.at + length, at);
      if (item) items.push(item);
    }
    if (this.stage === 'done' && this.buffered > 0) {
      throw this.error(`the archive has ${this.buffered} unexpected bytes after its trailer at byte ${this.offset}`);
    }
    return items;
  }

  /** Index of the first newline in the unconsumed input, counted from pos; -1 if none yet. */
  private findNewline(): number {
    let seen = 0;
    for (let i = 0; i < this.chunks.length; i++) {
      const c = this.chunks[i]!;
      const from = i === 0 ? this.pos : 0;
      const nl = c.indexOf(0x0a, from);
      if (nl >= 0) return seen + nl - from;
      seen += c.length - from;
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

  /** The frame's body is buf[start, end); `at` is the frame's archive offset. Records given to onRecord return nothing. */
  private decodeFrame(type: number, buf: Buffer, start: number, end: number, at: number): ArchiveItem | undefined {
    if (type === FrameType.Record && this.stage === 'records') {
      const record = this.parseRecord(buf, start, end, at);
      if (!this.onRecord) return { kind: 'record', record: record.toRecord() };
      this.onRecord(record);
      return undefined;
    }
    const body = buf.subarray(start, end);
    const where = `at byte ${at}`;
    if (this.stage === 'header') {
      if (type !== FrameType.Header) throw this.error(`expected the header frame ${where}, found ${frameName(type)}`);
      this.stage = 'records';
      return { kind: 'header', header: this.parseHeader(body, where) };
    }
    // The first lease, or the trailer, ends the records.
    if (type === FrameType.Lease) {
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

  /** Checks the record whose body is buf[start, end) and returns the reused view of it. */
  private parseRecord(buf: Buffer, start: number, end: number, at: number): NativeRecordView {
    const n = this.records + 1;
    const length = end - start;
    if (length < RecordLayout.Fixed) throw this.error(`record ${n} at byte ${at} is too short (${length} bytes)`);
    const keyLen = buf.readUInt32BE(start);
    if (keyLen === 0 || RecordLayout.Fixed + keyLen > length) {
      throw this.error(`record ${n} at byte ${at} has an impossible key length (${keyLen} of ${length} bytes)`);
    }
    const r = this.view;
    r.buf = buf;
    r.keyStart = start + RecordLayout.KeyLengthSize;
    r.keyEnd = r.keyStart + keyLen;
    r.end = end;
    if (!r.hasPrefix(this.prefix)) {
      throw this.error(`record ${n} at byte ${at} (key ${showKey(r.key())}) lies outside the archive's prefix ${JSON.stringify(this.prefix.toString())}`);
    }
    const last = this.lastKey;
    if (last.end >= 0 && buf.compare(last.buf, last.start, last.end, r.keyStart, r.keyEnd) <= 0) {
      throw this.error(`record ${n} at byte ${at} (key ${showKey(r.key())}) is out of order or repeated; keys must ascend`);
    }
    last.buf = buf;
    last.start = r.keyStart;
    last.end = r.keyEnd;
    this.records = n;
    return r;
  }

  private parseLease(body: Buffer, where: string): LeaseRecord {
    if (body.length !== LeaseLayout.Size) throw this.error(`lease ${this.leases + 1} ${where} has ${body.length} bytes, not ${LeaseLayout.Size}`);
    this.leases++;
    return {
      id: readInt64(body, LeaseLayout.IdAt),
      grantedTtl: readInt64(body, LeaseLayout.GrantedAt),
      remainingTtl: readInt64(body, LeaseLayout.RemainingAt),
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
  const names: Record<number, string> = { [FrameType.Header]: 'header', [FrameType.Record]: 'record', [FrameType.Lease]: 'lease', [FrameType.Trailer]: 'trailer' };
  return type !== undefined && names[type] ? `a ${names[type]} frame` : `an unknown frame type (0x${(type ?? 0).toString(16)})`;
}
