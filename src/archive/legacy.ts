import { ArchiveError } from '../errors';
import { recordRef } from './keys';
import type { ArchiveDecoder, ArchiveItem, KeyRecord, RecordRef } from './types';

/**
 * The original Go plugin's format: one `base64(key) : base64(value)` line per
 * key, keys descending, nothing else. No revision, leases or checksum, so only
 * its structure can be verified.
 */
const SEPARATOR = ' : ';
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** A line longer than this is not something the original plugin wrote. */
const MAX_LINE_BYTES = 512 * 1024 * 1024;

export function encodeLegacyLine(key: Buffer, value: Buffer): string {
  return `${key.toString('base64')}${SEPARATOR}${value.toString('base64')}\n`;
}

export class LegacyDecoder implements ArchiveDecoder {
  private partial: Buffer[] = [];
  private partialBytes = 0;
  private line = 0;
  // A repeated key would make etcd refuse a transaction half-way through a
  // restore, so it is caught here. Unlike ours, this format gives no order to
  // rely on, so the keys are remembered (the original plugin held them all too).
  private readonly seen = new Set<string>();

  /** With onRecord, records go to it instead of becoming items (as NativeDecoder does). */
  constructor(private readonly onRecord?: (record: RecordRef) => void) {}

  push(chunk: Buffer): ArchiveItem[] {
    const items: ArchiveItem[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, start)) {
      let text: string;
      if (this.partial.length) {
        this.partial.push(chunk.subarray(start, nl));
        text = Buffer.concat(this.partial).toString('latin1');
        this.partial = [];
        this.partialBytes = 0;
      } else {
        text = chunk.toString('latin1', start, nl);
      }
      const record = this.parseLine(text);
      if (this.onRecord) this.onRecord(recordRef(record));
      else items.push({ kind: 'record', record });
      start = nl + 1;
    }
    if (start < chunk.length) {
      this.partialBytes += chunk.length - start;
      if (this.partialBytes > MAX_LINE_BYTES) {
        throw this.error(`line ${this.line + 1} is longer than ${MAX_LINE_BYTES} bytes without a newline; this is not a legacy archive`);
      }
      this.partial.push(chunk.subarray(start));
    }
    return items;
  }

  end(): ArchiveItem[] {
    if (this.partialBytes > 0) {
      throw this.error(
        `line ${this.line + 1} has no closing newline: the archive is truncated (the original plugin ended every line with one)`,
      );
    }
    return [];
  }

  private error(message: string): ArchiveError {
    return new ArchiveError(message, 'use an intact archive; `etcd-shield verify` checks one without touching etcd');
  }

  private parseLine(text: string): KeyRecord {
    this.line++;
    const at = text.indexOf(SEPARATOR);
    if (at < 0) {
      throw this.error(`line ${this.line} has no " : " separator between key and value; the archive is damaged or not a legacy etcd archive`);
    }
    const k = text.slice(0, at);
    const v = text.slice(at + SEPARATOR.length);
    if (k === '') throw this.error(`line ${this.line} has an empty key`);
    if (!BASE64_RE.test(k)) throw this.error(`line ${this.line}: the key is not valid base64`);
    if (!BASE64_RE.test(v)) throw this.error(`line ${this.line}: the value is not valid base64`);
    const key = Buffer.from(k, 'base64');
    // By the bytes, not the text: "QQ==" and "QR==" are both the key "A".
    const seenAs = key.toString('latin1');
    if (this.seen.has(seenAs)) throw this.error(`line ${this.line} repeats a key that an earlier line holds; the archive is damaged`);
    this.seen.add(seenAs);
    return {
      key,
      value: Buffer.from(v, 'base64'),
      createRevision: '0',
      modRevision: '0',
      version: '0',
      lease: '0',
    };
  }
}
