import { pipeline, Readable, type Duplex } from 'node:stream';
import { ArchiveError } from '../errors';
import { type CompressOptions, compressor, decompressor } from './compression';
import { decryptor, encryptor } from './encryption';
import type { Compression, DetectedForm, StoredForm } from './types';

const AGE_BINARY = Buffer.from('age-encryption.org/v1\n');
const AGE_ARMORED = Buffer.from('-----BEGIN AGE ENCRYPTED FILE-----');
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);

/** How many first bytes detectStoredForm needs (fewer only if the data is shorter). */
export const DETECT_BYTES = 64;

const EXTENSIONS: Record<Compression, string> = { zstd: '.zst', gzip: '.gz', none: '' };

/** The file name ending for stored data: '.zst', '.gz.age', '' ... */
export function storedExtension(form: StoredForm): string {
  return EXTENSIONS[form.compression] + (form.encrypted ? '.age' : '');
}

/** The stages that make stored bytes from an archive, in order: compress, then encrypt. */
export function encodeStages(form: StoredForm, recipients: string[], opts: CompressOptions = {}): Duplex[] {
  return [...(form.compression === 'none' ? [] : [compressor(form.compression, opts)]), ...(form.encrypted ? [encryptor(recipients)] : [])];
}

/** The stages that make an archive from stored bytes, in order: decrypt, then decompress. */
export function decodeStages(form: StoredForm, identities: string[], name: string): Duplex[] {
  return [...(form.encrypted ? [decryptor(identities, name)] : []), ...(form.compression === 'none' ? [] : [decompressor(form.compression, name)])];
}

/**
 * Tells age, zstd and gzip from their first bytes (DETECT_BYTES of them);
 * anything else is taken as a plain archive. Armored age (age -a) is
 * refused: age-encryption decodes armor only whole, not as a stream.
 */
export function detectStoredForm(head: Buffer, name = 'the stored data'): DetectedForm {
  const starts = (magic: Buffer) => head.length >= magic.length && head.subarray(0, magic.length).equals(magic);
  if (starts(AGE_BINARY)) return { compression: undefined, encrypted: true };
  if (starts(AGE_ARMORED)) {
    throw new ArchiveError(`${name} is ASCII-armored age (made with age -a), which etcd-shield does not read`, 'remove the armor first: age -d -i KEY FILE | age -r RECIPIENT > FILE.age, then use that');
  }
  if (starts(ZSTD_MAGIC)) return { compression: 'zstd', encrypted: false };
  if (starts(GZIP_MAGIC)) return { compression: 'gzip', encrypted: false };
  return { compression: 'none', encrypted: false };
}

export interface OpenOptions {
  /** Identities to decrypt with (readIdentityFile); needed only if the data is encrypted. */
  identities: string[];
  /** Names the data in messages: a file, a store key. */
  name: string;
  /** What the data must be (from a manifest); anything else is refused. Without it, whatever is detected is read. */
  form?: StoredForm;
}

/**
 * The plain archive inside stored data: detects age, decrypts, detects the
 * compression inside, decompresses. Rejects before any archive byte is read
 * if the data is not what `form` says, cannot be decrypted with these
 * identities, or is empty where it must not be; later damage fails the
 * returned stream. On rejection the input is destroyed.
 */
export async function openStored(input: Readable, opts: OpenOptions): Promise<Readable> {
  const { name, form } = opts;
  let current: Readable = input;
  try {
    let { head, rest } = await peek(input, DETECT_BYTES);
    current = rest;
    const outer = detectStoredForm(head, name);
    if (form && form.encrypted !== outer.encrypted) {
      if (head.length === 0) throw new ArchiveError(`${name} is empty`);
      throw new ArchiveError(
        outer.encrypted ? `${name} is age-encrypted, but its manifest says it is not` : `${name} is not age-encrypted, but its manifest says it is`,
      );
    }
    let compression: Compression;
    if (outer.encrypted) {
      current = chain(rest, decryptor(opts.identities, name));
      ({ head, rest } = await peek(current, DETECT_BYTES));
      current = rest;
      const inner = detectStoredForm(head, `the data inside ${name}`);
      if (inner.encrypted) throw new ArchiveError(`${name} holds age-encrypted data inside its age encryption, which etcd-shield never writes`);
      compression = inner.compression;
    } else {
      compression = outer.compression;
    }
    if (form && form.compression !== compression) {
      throw new ArchiveError(`${name} holds ${describe(compression)} data, but its manifest says ${describe(form.compression)}`);
    }
    return compression === 'none' ? rest : chain(rest, decompressor(compression, name));
  } catch (err) {
    current.destroy();
    input.destroy();
    throw err;
  }
}

const describe = (c: Compression) => (c === 'none' ? 'uncompressed' : c);

/** `source` piped into `stage`; a failure of either fails the stage, which is what the reader sees. */
function chain(source: Readable, stage: Duplex): Duplex {
  pipeline(source, stage, () => undefined);
  return stage;
}

/**
 * The first `size` bytes (fewer if the stream is shorter), and a stream of
 * all the bytes, those included. Rejects with the input's error. The head
 * goes back into the input (unshift), which is then the rest, so the bytes
 * after it pass untouched: no copy, no promise per chunk (docs/performance.md,
 * "Stores").
 */
function peek(input: Readable, size: number): Promise<{ head: Buffer; rest: Readable }> {
  const chunks: Buffer[] = [];
  let got = 0;
  return new Promise((resolve, reject) => {
    const settle = (then: () => void) => {
      input.off('readable', take);
      input.off('end', onEnd);
      input.off('error', onError);
      input.off('close', onClose);
      then();
    };
    function take(): void {
      for (let c: Buffer | null; got < size && (c = input.read() as Buffer | null) !== null; got += c.length) chunks.push(c);
      if (got < size) return;
      // Now, not after an await: the last read() may have scheduled 'end', which must find the head back in place.
      const head = Buffer.concat(chunks);
      input.unshift(head);
      settle(() => resolve({ head, rest: input }));
    }
    const onEnd = () => {
      const head = Buffer.concat(chunks);
      settle(() => resolve({ head, rest: Readable.from(head.length > 0 ? [head] : [], { objectMode: false }) }));
    };
    const onError = (err: Error) => settle(() => reject(err));
    const onClose = () => settle(() => reject(input.errored ?? Object.assign(new Error('premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' })));
    // The input stays errored for whoever reads it next (pipeline() reports
    // that), but an 'error' emitted before they attach must not crash the process.
    input.on('error', () => undefined);
    // A stream already over sends no more events to wait for.
    if (input.errored) return reject(input.errored);
    if (input.readableEnded) return onEnd();
    if (input.destroyed) return onClose();
    input.on('readable', take);
    input.once('end', onEnd);
    input.once('error', onError);
    input.once('close', onClose);
  });
}
