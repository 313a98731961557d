import { readSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { ArchiveError, FileError } from '../errors';
import { damaged, META, Page, PAGE_HEADER, pageName, readPgid } from './page';

export const BOLT_MAGIC = 0xed0cdaed;
const BOLT_VERSION = 2;
/** etcd appends a sha256 of the database; etcdctl spots it the same way. */
export const TRAILER_BYTES = 32;
const TRAILER_ALIGN = 512;
const MIN_PAGE = 512;
const MAX_PAGE = 1 << 20;
/** Page sizes to look for the second meta page at when the first one is damaged. */
const FALLBACK_PAGE_SIZES = [4096, 8192, 16384, 65536, 1024, 2048, 32768];
// Offsets inside a meta page.
const M_MAGIC = PAGE_HEADER;
const M_VERSION = PAGE_HEADER + 4;
const M_PAGE_SIZE = PAGE_HEADER + 8;
const M_ROOT = PAGE_HEADER + 16;
const M_FREELIST = PAGE_HEADER + 32;
const M_PGID = PAGE_HEADER + 40;
const M_TXID = PAGE_HEADER + 48;
const M_CHECKSUM = PAGE_HEADER + 56;
const META_BYTES = M_CHECKSUM + 8;
/** Reads between two turns of the event loop (see breather()). */
const YIELD_EVERY = 64;
/**
 * The most read at once ahead of a sequential walk (at least a page), and
 * the blocks kept. Small on purpose: the kernel copies into a block that
 * stays in the CPU's cache about 4 times as fast (docs/performance.md).
 */
const READ_AHEAD_BYTES = 64 * 1024;
const BLOCKS = 2;
/** Bytes per read for a pass over the whole file (the sha256 of the trailer), small for the same reason. */
export const FILE_CHUNK_BYTES = 64 * 1024;

export interface Meta {
  /** 0 or 1: which of the two meta pages. */
  index: number;
  pageSize: number;
  root: number;
  /** Page id of the freelist, or -1 when the freelist is not stored (etcd's NoFreelistSync). */
  freelist: number;
  /** Pages in use: every page id is below this. */
  pages: number;
  txid: bigint;
}

/** Whether the bytes at a file's start are a bbolt meta page. */
export function isBoltHead(head: Buffer): boolean {
  return head.length >= M_MAGIC + 4 && head.readUInt32LE(M_MAGIC) === BOLT_MAGIC && head.readUInt16LE(8) === META;
}

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const U64 = (1n << 64n) - 1n;

function fnv64a(bytes: Buffer): bigint {
  let h = FNV_OFFSET;
  for (const b of bytes) h = ((h ^ BigInt(b)) * FNV_PRIME) & U64;
  return h;
}

/** The meta page's fields if its magic, version and checksum hold; else why not. */
export function parseMeta(buf: Buffer, index: number): Meta | string {
  if (buf.length < META_BYTES) return 'it is cut short';
  if (buf.readUInt32LE(M_MAGIC) !== BOLT_MAGIC) return 'its magic number is wrong';
  if (buf.readUInt32LE(M_VERSION) !== BOLT_VERSION) return `its version is ${buf.readUInt32LE(M_VERSION)}, not ${BOLT_VERSION}`;
  if (fnv64a(buf.subarray(M_MAGIC, M_CHECKSUM)) !== buf.readBigUInt64LE(M_CHECKSUM)) return 'its checksum does not match';
  const pageSize = buf.readUInt32LE(M_PAGE_SIZE);
  if (pageSize < MIN_PAGE || pageSize > MAX_PAGE || (pageSize & (pageSize - 1)) !== 0) return `its page size ${pageSize} is not a power of two`;
  const noFreelist = buf.readBigUInt64LE(M_FREELIST) === U64;
  return {
    index,
    pageSize,
    root: readPgid(buf, M_ROOT),
    freelist: noFreelist ? -1 : readPgid(buf, M_FREELIST),
    pages: readPgid(buf, M_PGID),
    txid: buf.readBigUInt64LE(M_TXID),
  };
}

/**
 * A bbolt database file read in place with positioned reads: only the pages
 * asked for are in memory, never the whole file.
 */
export class BoltFile {
  private reads = 0;
  /** The blocks read last, newest first: a block of leaves and the branch page above them. */
  private blocks: { first: number; pages: number; buf: Buffer }[] = [];
  /** Pages in a full read-ahead block. */
  private readonly aheadMax: number;
  /** Buffers of blocks no longer kept, for the next reads: fresh ones cost page faults and collections. */
  private readonly spare: Buffer[] = [];

  private constructor(
    private readonly fh: FileHandle,
    readonly path: string,
    /** Bytes on disk, trailer included. */
    readonly size: number,
    /** Whether the file ends in etcd's 32-byte sha256 trailer. */
    readonly hasTrailer: boolean,
    readonly meta: Meta,
    /** Why the other meta page was not used, if it was unusable. */
    readonly otherMetaProblem: string | undefined,
  ) {
    this.aheadMax = Math.max(1, Math.floor(READ_AHEAD_BYTES / meta.pageSize));
  }

  /** For readers on other threads, which share it. */
  get fd(): number {
    return this.fh.fd;
  }

  get pageSize(): number {
    return this.meta.pageSize;
  }

  /** Bytes of the database itself: the file without the trailer. */
  get dataSize(): number {
    return this.hasTrailer ? this.size - TRAILER_BYTES : this.size;
  }

  static async open(path: string): Promise<BoltFile> {
    const fh = await open(path, 'r').catch((err: NodeJS.ErrnoException) => {
      throw new FileError(`cannot open snapshot ${path}: ${err.code ?? err.message}`, 'check the path and its permissions');
    });
    try {
      const size = (await fh.stat()).size;
      const hasTrailer = size % TRAILER_ALIGN === TRAILER_BYTES;
      const read = async (at: number, len: number) => {
        const buf = Buffer.alloc(len);
        const { bytesRead } = await fh.read(buf, 0, len, at);
        return buf.subarray(0, bytesRead);
      };
      const first = parseMeta(await read(0, META_BYTES), 0);
      const sizes = typeof first === 'string' ? FALLBACK_PAGE_SIZES : [first.pageSize];
      // The problem named is the one at the usual place, not the last size tried.
      let second: Meta | string = parseMeta(await read(sizes[0]!, META_BYTES), 1);
      for (const ps of sizes.slice(1)) {
        if (typeof second !== 'string') break;
        const found = parseMeta(await read(ps, META_BYTES), 1);
        if (typeof found !== 'string') second = found;
      }
      const valid = [first, second].filter((m): m is Meta => typeof m !== 'string');
      if (valid.length === 0) {
        throw new ArchiveError(
          `${path} is not a usable bbolt database: the first meta page is unusable (${first as string}), and so is the second (${second as string})`,
          'use an intact etcd snapshot (as `etcdctl snapshot save` writes it, or a member\'s member/snap/db)',
        );
      }
      // bbolt opens the newest valid meta; the other is the transaction before it.
      const meta = valid.reduce((a, b) => (b.txid > a.txid ? b : a));
      const other = meta.index === 0 ? second : first;
      const file = new BoltFile(fh, path, size, hasTrailer, meta, typeof other === 'string' ? other : undefined);
      file.checkBounds();
      return file;
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  private checkBounds(): void {
    const { pages, root, freelist, pageSize } = this.meta;
    const where = `${this.path}, meta page ${this.meta.index}`;
    if (!(pages >= 2)) throw damaged(where, `it counts ${pages} pages`);
    if (pages * pageSize > this.dataSize) {
      throw new ArchiveError(
        `${this.path} is truncated: its ${pages} pages of ${pageSize} bytes need ${pages * pageSize} bytes, but the file holds only ${this.size}`,
        'the copy or download was cut short; use a complete snapshot',
      );
    }
    const rest = this.dataSize % pageSize;
    if (rest !== 0) {
      throw new ArchiveError(
        `${this.path} ends ${rest} bytes into a page of ${pageSize} bytes${this.hasTrailer ? ' before its sha256 trailer' : ''}: bbolt files are whole pages, plus etcd's 32-byte sha256 trailer when saved by etcdctl, so this one is truncated or has bytes added`,
        'the copy or download was cut short or altered; use a complete snapshot',
      );
    }
    if (!(root >= 2 && root < pages)) throw damaged(where, `the root page ${root} is outside pages 2..${pages - 1}`);
    if (freelist !== -1 && !(freelist >= 2 && freelist < pages)) throw damaged(where, `the freelist page ${freelist} is outside pages 2..${pages - 1}`);
  }

  /**
   * Reads a page and its overflow, checking its id, flags and bounds. The
   * page is a view of a block that may hold the pages after it too, and
   * whose buffer is reused once BLOCKS newer blocks have been read: a page
   * kept longer than that needs Page.owned().
   */
  page(id: number): Page {
    if (!(id >= 2 && id < this.meta.pages)) throw damaged(pageName(id, this.path), `the page id is outside pages 2..${this.meta.pages - 1}`);
    let buf = this.span(id, 1);
    if (readPgid(buf, 0) !== id) throw damaged(pageName(id, this.path), `the page says it is page ${readPgid(buf, 0)}`);
    const overflow = buf.readUInt32LE(12);
    if (overflow > 0) {
      if (id + overflow >= this.meta.pages) throw damaged(pageName(id, this.path), `its ${overflow} overflow pages run past the last page ${this.meta.pages - 1}`);
      buf = this.span(id, overflow + 1);
    }
    return new Page(buf, this.path, id);
  }

  /**
   * Pages id..id+count-1, from the blocks read last when they hold them. A
   * read right after a block is twice that block (up to READ_AHEAD_BYTES),
   * any other miss starts again at one page: bbolt lays a tree's
   * leaves out mostly in order, but not always.
   */
  private span(id: number, count: number): Buffer {
    for (const b of this.blocks) {
      if (id >= b.first && id + count <= b.first + b.pages) return b.buf.subarray((id - b.first) * this.pageSize, (id - b.first + count) * this.pageSize);
    }
    // Doubling the block this one continues: a branch page read in between does not start a walk of leaves over.
    const before = this.blocks.find((b) => b.first + b.pages === id);
    const ahead = before ? Math.min(before.pages * 2, this.aheadMax) : 1;
    const pages = Math.max(count, Math.min(ahead, this.meta.pages - id));
    const block = this.aheadMax * this.pageSize;
    // A page with more overflow than a block gets a buffer of its own.
    const into = pages <= this.aheadMax ? (this.spare.pop() ?? Buffer.allocUnsafeSlow(block)) : undefined;
    const buf = this.read(id * this.pageSize, pages * this.pageSize, into);
    const dropped = this.blocks.length === BLOCKS ? this.blocks.pop()! : undefined;
    this.blocks.unshift({ first: id, pages, buf });
    if (dropped && dropped.buf.buffer.byteLength === block) this.spare.push(Buffer.from(dropped.buf.buffer));
    return buf.subarray(0, count * this.pageSize);
  }

  /** The raw first page of a span, for pages that are not tree pages (the freelist). */
  rawPage(id: number): Buffer {
    return this.read(id * this.pageSize, this.pageSize);
  }

  /**
   * A turn of the event loop every YIELD_EVERY reads, for walks that read
   * synchronously: a promise to await then, else undefined (awaiting that
   * would cost a turn of the microtask queue per page).
   */
  breather(): Promise<void> | undefined {
    if (this.reads < YIELD_EVERY) return undefined;
    this.reads = 0;
    return new Promise((resolve) => setImmediate(resolve));
  }

  /**
   * Reads synchronously: a page is a few KiB, mostly from the page cache, and
   * a trip through the thread pool per page cost more than the read itself
   * (docs/performance.md, "Reading snapshots"). Walks give the event loop a
   * turn through breather().
   */
  read(at: number, len: number, into?: Buffer): Buffer {
    this.reads++;
    const buf = into ? into.subarray(0, len) : Buffer.allocUnsafe(len);
    let done = 0;
    while (done < len) {
      let n: number;
      try {
        n = readSync(this.fh.fd, buf, done, len - done, at + done);
      } catch (err) {
        throw new FileError(`cannot read snapshot ${this.path}: ${(err as Error).message}`);
      }
      if (n === 0) throw damaged(this.path, `it ends at byte ${at + done}, inside a page`);
      done += n;
    }
    return buf;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}
