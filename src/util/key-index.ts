/**
 * Key bytes to a number (the newest entry of each key in a snapshot's
 * history; a changed key's final state in a change log): an open-addressing
 * hash table over typed arrays, with the keys packed into large chunks.
 * About the key's length plus 30 bytes per key, where a Map of strings took
 * about 150 (docs/archive-format.md, "Memory bound"), and no object per key
 * for the collector to trace.
 */
const CHUNK = 4 * 1024 * 1024;
const FIRST_CAPACITY = 1024;
const EMPTY = -1;

/** FNV-1a, 32 bits. */
function hashOf(key: Buffer): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key[i]!, 0x01000193);
  return h | 0;
}

/** A typed array twice as long, starting with a's contents: per-entry columns grow this way. */
export function doubled<T extends Int32Array | Uint32Array | Float64Array>(a: T): T {
  const b = new (a.constructor as new (length: number) => T)(a.length * 2);
  b.set(a);
  return b;
}

export class KeyIndex {
  private chunks: Buffer[] = [];
  private used = CHUNK; // no chunk yet: the first key starts one
  // Per entry: where its key is (chunk, offset, length), its hash, its value.
  private chunkOf = new Int32Array(FIRST_CAPACITY / 2);
  private offsetOf = new Int32Array(FIRST_CAPACITY / 2);
  private lengthOf = new Int32Array(FIRST_CAPACITY / 2);
  private hashes = new Int32Array(FIRST_CAPACITY / 2);
  private values = new Float64Array(FIRST_CAPACITY / 2);
  /** Entry index + 1 per slot; 0 is free. Kept at most half full. */
  private slots = new Int32Array(FIRST_CAPACITY);
  size = 0;

  set(key: Buffer, value: number): void {
    const h = hashOf(key);
    const slot = this.find(key, h);
    const at = this.slots[slot]!;
    if (at !== 0) {
      this.values[at - 1] = value;
      return;
    }
    if ((this.size + 1) * 2 > this.slots.length) {
      this.grow();
      this.slots[this.find(key, h)] = this.add(key, h, value);
    } else {
      this.slots[slot] = this.add(key, h, value);
    }
  }

  /** The value stored for key, or EMPTY (-1) when there is none. */
  get(key: Buffer): number {
    const at = this.slots[this.find(key, hashOf(key))]!;
    return at === 0 ? EMPTY : this.values[at - 1]!;
  }

  /** The key of entry e, as a view: entries are numbered from 0 in the order their keys were first set. */
  key(e: number): Buffer {
    const o = this.offsetOf[e]!;
    return this.chunks[this.chunkOf[e]!]!.subarray(o, o + this.lengthOf[e]!);
  }

  has(key: Buffer): boolean {
    return this.slots[this.find(key, hashOf(key))] !== 0;
  }

  /** The slot holding key, or the free slot where it would go. */
  private find(key: Buffer, h: number): number {
    const mask = this.slots.length - 1;
    for (let s = h & mask; ; s = (s + 1) & mask) {
      const at = this.slots[s]!;
      if (at === 0) return s;
      const e = at - 1;
      if (this.hashes[e] === h && this.lengthOf[e] === key.length) {
        const chunk = this.chunks[this.chunkOf[e]!]!;
        const o = this.offsetOf[e]!;
        if (key.compare(chunk, o, o + key.length) === 0) return s;
      }
    }
  }

  /** Stores the key's bytes and the entry; returns its slot marker (index + 1). */
  private add(key: Buffer, h: number, value: number): number {
    if (this.used + key.length > CHUNK || this.chunks.length === 0) {
      this.chunks.push(Buffer.allocUnsafe(Math.max(CHUNK, key.length)));
      this.used = 0;
    }
    const e = this.size++;
    if (e === this.values.length) this.growEntries();
    key.copy(this.chunks[this.chunks.length - 1]!, this.used);
    this.chunkOf[e] = this.chunks.length - 1;
    this.offsetOf[e] = this.used;
    this.lengthOf[e] = key.length;
    this.hashes[e] = h;
    this.values[e] = value;
    // A key larger than a chunk has its own, and the next key starts a new one.
    this.used = key.length > CHUNK ? CHUNK : this.used + key.length;
    return e + 1;
  }

  private growEntries(): void {
    this.chunkOf = doubled(this.chunkOf);
    this.offsetOf = doubled(this.offsetOf);
    this.lengthOf = doubled(this.lengthOf);
    this.hashes = doubled(this.hashes);
    this.values = doubled(this.values);
  }

  private grow(): void {
    const slots = new Int32Array(this.slots.length * 2);
    const mask = slots.length - 1;
    for (let e = 0; e < this.size; e++) {
      let s = this.hashes[e]! & mask;
      while (slots[s] !== 0) s = (s + 1) & mask;
      slots[s] = e + 1;
    }
    this.slots = slots;
  }
}
