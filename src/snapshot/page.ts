import { ArchiveError } from '../errors';

// bbolt's on-disk layout (little-endian): a 16-byte page header, then
// 16-byte elements, then the keys and values they point at.
export const PAGE_HEADER = 16;
const ELEMENT = 16;
export const BRANCH = 0x01;
export const LEAF = 0x02;
export const META = 0x04;
export const FREELIST = 0x10;
/** A leaf element whose value is a nested bucket. */
export const BUCKET_ELEMENT = 0x01;
/** A bucket value: root page id and sequence, then (root 0) the inline page. */
export const BUCKET_HEADER = 16;

const TWO_32 = 2 ** 32;

/** A page id (u64) as a number; ids past 2^53 come back as Infinity, which no bound admits. */
export function readPgid(buf: Buffer, at: number): number {
  const hi = buf.readUInt32LE(at + 4);
  return hi >= 2 ** 21 ? Infinity : hi * TWO_32 + buf.readUInt32LE(at);
}

export function pageName(id: number, path: string): string {
  return `page ${id} of ${path}`;
}

export function damaged(where: string, what: string): ArchiveError {
  return new ArchiveError(
    `${where}: ${what}; the snapshot is damaged or not a bbolt database`,
    'use an intact snapshot (`etcd-shield verify --in FILE` checks one without touching etcd)',
  );
}

/**
 * One page (with its overflow pages) as read from the file, or an inline
 * bucket's page inside a value. Every accessor checks its bounds, so a
 * damaged page throws instead of reading past its end.
 */
export class Page {
  readonly flags: number;
  readonly count: number;

  /** `name` is the file's path for a page of it (`id` given), else the whole name, e.g. an inline bucket's. */
  constructor(
    readonly buf: Buffer,
    private readonly name: string,
    private readonly id = -1,
  ) {
    if (buf.length < PAGE_HEADER) throw damaged(this.where, 'the page header is cut short');
    this.flags = buf.readUInt16LE(8);
    this.count = buf.readUInt16LE(10);
    if (this.flags !== BRANCH && this.flags !== LEAF) throw damaged(this.where, `flags 0x${this.flags.toString(16)} are not a branch or leaf page`);
    if (PAGE_HEADER + this.count * ELEMENT > buf.length) throw damaged(this.where, `${this.count} elements do not fit in the page`);
  }

  /** How errors name it, e.g. "page 7 of db": made when one needs it, not for each page read. */
  get where(): string {
    return this.id < 0 ? this.name : pageName(this.id, this.name);
  }

  get isLeaf(): boolean {
    return this.flags === LEAF;
  }

  /**
   * The page over bytes of its own. BoltFile reuses its read buffers, so a
   * page kept while others are read (a branch on a walk's stack) needs one.
   */
  owned(): Page {
    return new Page(Buffer.from(this.buf), this.name, this.id);
  }

  /** Where in buf a stretch of len bytes of element i starts, checked to lie inside the page. */
  private start(i: number, posAt: number, skip: number, len: number): number {
    const start = PAGE_HEADER + i * ELEMENT + this.buf.readUInt32LE(posAt) + skip;
    if (start + len > this.buf.length) throw damaged(this.where, `element ${i} points past the page's end`);
    return start;
  }

  key(i: number): Buffer {
    const at = this.keyAt(i);
    return this.buf.subarray(at, at + this.keyLength(i));
  }

  keyLength(i: number): number {
    const e = PAGE_HEADER + i * ELEMENT;
    return this.buf.readUInt32LE(this.isLeaf ? e + 8 : e + 4);
  }

  /** Where element i's key starts in buf. */
  keyAt(i: number): number {
    const e = PAGE_HEADER + i * ELEMENT;
    return this.isLeaf ? this.start(i, e + 4, 0, this.buf.readUInt32LE(e + 8)) : this.start(i, e, 0, this.buf.readUInt32LE(e + 4));
  }

  /** Leaf pages only. */
  value(i: number): Buffer {
    const at = this.valueAt(i);
    return this.buf.subarray(at, at + this.valueLength(i));
  }

  /** Leaf pages only. */
  valueLength(i: number): number {
    return this.buf.readUInt32LE(PAGE_HEADER + i * ELEMENT + 12);
  }

  /** Leaf pages only: where element i's value starts in buf. */
  valueAt(i: number): number {
    const e = PAGE_HEADER + i * ELEMENT;
    return this.start(i, e + 4, this.buf.readUInt32LE(e + 8), this.buf.readUInt32LE(e + 12));
  }

  /** Leaf pages only. */
  isBucket(i: number): boolean {
    return (this.buf.readUInt32LE(PAGE_HEADER + i * ELEMENT) & BUCKET_ELEMENT) !== 0;
  }

  /** Branch pages only. */
  child(i: number): number {
    return readPgid(this.buf, PAGE_HEADER + i * ELEMENT + 8);
  }

  /** The first element whose key is >= key (count if none). */
  lowerBound(key: Buffer): number {
    let lo = 0;
    let hi = this.count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (Buffer.compare(this.key(mid), key) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** In a branch page, the child that holds key: the last one whose key is <= key, else the first. */
  childFor(key: Buffer): number {
    const i = this.lowerBound(key);
    if (i < this.count && Buffer.compare(this.key(i), key) === 0) return i;
    return Math.max(0, i - 1);
  }
}
