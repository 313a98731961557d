import type { StoredForm } from '../pipeline/types';
import { storedExtension } from '../pipeline/stages';

/**
 * Change segments and gap markers live beside the backups, flat like them:
 *   changes-r<first>-r<last>-<time of last>.seg[.zst|.gz][.age]
 *   changes-gap-r<first lost>-<time detected>.json
 * The name alone tells the chain and the windows, so list reads no segment.
 */
const SEGMENT = /^changes-r(\d+)-r(\d+)-(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2})\.(\d{3})Z\.seg(\.zst|\.gz)?(\.age)?$/;
const GAP = /^changes-gap-r(\d+)-(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2})\.(\d{3})Z\.json$/;

export interface SegmentName {
  first: number;
  last: number;
  /** When the last revision was seen. */
  lastTime: Date;
  form: StoredForm;
}

function stamp(t: Date): string {
  return t.toISOString().replace(/:/g, '-');
}

export function segmentKey(first: number, last: number, lastTime: Date, form: StoredForm): string {
  return `changes-r${first}-r${last}-${stamp(lastTime)}.seg${storedExtension(form)}`;
}

export function gapKey(from: number, detectedAt: Date): string {
  return `changes-gap-r${from}-${stamp(detectedAt)}.json`;
}

export function parseSegmentKey(key: string): SegmentName | undefined {
  const m = SEGMENT.exec(key);
  if (!m) return undefined;
  const compression = m[8] === '.zst' ? 'zstd' : m[8] === '.gz' ? 'gzip' : 'none';
  return {
    first: Number(m[1]),
    last: Number(m[2]),
    lastTime: new Date(`${m[3]}T${m[4]}:${m[5]}:${m[6]}.${m[7]}Z`),
    form: { compression, encrypted: m[9] === '.age' },
  };
}

export function isGapKey(key: string): boolean {
  return GAP.test(key);
}
