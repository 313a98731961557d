import { closeSync, createWriteStream, writeFile as writeFileCb, type WriteStream } from 'node:fs';
import { open, opendir, readdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { FileError, NotFoundError, ShieldError, StoreError } from '../errors';
import { PartFile, partTarget } from '../io/part-file';
import { makeDirectory } from '../io/make-directory';
import { WRITE_BUFFER_BYTES } from '../io/sink';
import { checkKey, keyProblem } from './keys';
import { bodyFailure, cancelled, guarded, messageOf, readAtMost, tooLarge } from './streams';
import type { ObjectStore, StoredObject, UnfinishedWrite } from './types';

const writeFile = promisify(writeFileCb);

/**
 * Objects as the regular files of one directory. A write goes to a hidden
 * part file beside its target and is renamed into place once on disk, so a
 * listing never shows half an object. put and putBytes create the directory
 * (mkdir -p); check and list report a missing one.
 */
export class DirectoryStore implements ObjectStore {
  readonly url: string;

  constructor(readonly dir: string) {
    this.url = pathToFileURL(dir).href;
  }

  async check(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw cancelled(`checking ${this.url}`);
    try {
      const st = await stat(this.dir);
      if (!st.isDirectory()) throw new StoreError(`${this.url} is not a directory`, 'give the path of a directory');
      await (await opendir(this.dir)).close();
    } catch (err) {
      throw this.dirError(err);
    }
  }

  async prepare(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) throw cancelled(`preparing ${this.url}`);
    await this.makeDirectory();
    await this.check(signal);
  }

  async list(signal?: AbortSignal): Promise<StoredObject[]> {
    return (await this.files((name) => !keyProblem(name), signal)).map(({ name, size, modified }) => ({ key: name, size, modified }));
  }

  async read(key: string, signal?: AbortSignal): Promise<Readable> {
    checkKey(key, this.url);
    const doing = `reading ${key} from ${this.url}`;
    if (signal?.aborted) throw cancelled(doing);
    let file: FileHandle;
    try {
      file = await open(join(this.dir, key), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`${key} does not exist in ${this.url}`);
      throw new StoreError(`cannot read ${key} from ${this.url}: ${messageOf(err)}`, undefined, { cause: err });
    }
    const source = file.createReadStream({ highWaterMark: WRITE_BUFFER_BYTES });
    return guarded(source, (err) => new StoreError(`cannot read ${key} from ${this.url}: ${messageOf(err)}`, undefined, { cause: err }), doing, signal);
  }

  async readBytes(key: string, maxBytes: number, signal?: AbortSignal): Promise<Buffer> {
    return readAtMost(await this.read(key, signal), maxBytes, () => tooLarge(key, this.url, maxBytes));
  }

  async put(key: string, body: Readable, signal?: AbortSignal): Promise<{ bytes: number }> {
    const doing = `writing ${key} to ${this.url}`;
    let part: PartFile;
    try {
      checkKey(key, this.url);
      if (signal?.aborted) throw cancelled(doing);
      part = await this.openPart(key);
    } catch (err) {
      body.destroy();
      throw err;
    }
    const out = createWriteStream('', { fd: part.fd, autoClose: false, highWaterMark: WRITE_BUFFER_BYTES });
    // The first stream to fail is the culprit; pipeline then fails the others with its error.
    let failedFirst: 'body' | 'file' | undefined;
    body.once('error', () => (failedFirst ??= 'body'));
    out.once('error', () => (failedFirst ??= 'file'));
    let bytes = 0;
    try {
      await pipeline(
        body,
        async function* (source: AsyncIterable<Buffer>) {
          for await (const chunk of source) {
            bytes += chunk.length;
            part.wrote(chunk.length);
            yield chunk;
          }
        },
        out,
        { signal },
      );
      if (signal?.aborted) throw cancelled(doing);
    } catch (err) {
      await closed(out);
      part.remove();
      if (signal?.aborted) throw cancelled(doing);
      const fileFailed = failedFirst === 'file' && (err as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE';
      throw fileFailed ? new StoreError(`cannot write ${key} to ${this.url}: ${messageOf(err)}`, 'check free space and permissions', { cause: err }) : bodyFailure(err, key, this.url);
    }
    await this.commit(part);
    return { bytes };
  }

  async putBytes(key: string, data: Buffer, signal?: AbortSignal): Promise<void> {
    checkKey(key, this.url);
    const doing = `writing ${key} to ${this.url}`;
    if (signal?.aborted) throw cancelled(doing);
    const part = await this.openPart(key);
    try {
      await writeFile(part.fd, data);
      if (signal?.aborted) throw cancelled(doing);
    } catch (err) {
      closeSync(part.fd);
      part.remove();
      if (err instanceof ShieldError) throw err;
      throw new StoreError(`cannot write ${key} to ${this.url}: ${messageOf(err)}`, 'check free space and permissions', { cause: err });
    }
    await this.commit(part);
  }

  async remove(key: string, signal?: AbortSignal): Promise<void> {
    checkKey(key, this.url);
    if (signal?.aborted) throw cancelled(`removing ${key} from ${this.url}`);
    try {
      await unlink(join(this.dir, key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new StoreError(`cannot remove ${key} from ${this.url}: ${messageOf(err)}`, 'check the permissions of the directory', { cause: err });
    }
  }

  async unfinished(signal?: AbortSignal): Promise<UnfinishedWrite[]> {
    const ours = (name: string) => {
      const key = partTarget(name);
      return key !== undefined && !keyProblem(key);
    };
    return (await this.files(ours, signal)).map(({ name, size, modified }) => ({ id: name, key: partTarget(name)!, size, modified }));
  }

  async discard(write: UnfinishedWrite, signal?: AbortSignal): Promise<void> {
    // Only a part file's name, directly in the store's directory.
    if (partTarget(write.id) === undefined || write.id.includes('/')) throw new StoreError(`${JSON.stringify(write.id)} is not a part file of ${this.url}`);
    if (signal?.aborted) throw cancelled(`removing ${write.id} from ${this.url}`);
    try {
      await unlink(join(this.dir, write.id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new StoreError(`cannot remove ${write.id} from ${this.url}: ${messageOf(err)}`, 'check the permissions of the directory', { cause: err });
    }
  }

  close(): void {
    // Nothing is held between calls.
  }

  /** The regular files of the directory whose names `wanted` takes, with size and mtime. */
  private async files(wanted: (name: string) => boolean, signal?: AbortSignal): Promise<{ name: string; size: number; modified: Date }[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      throw this.dirError(err);
    }
    const files = [];
    for (const name of names) {
      if (signal?.aborted) throw cancelled(`listing ${this.url}`);
      if (!wanted(name)) continue;
      try {
        const st = await stat(join(this.dir, name));
        if (st.isFile()) files.push({ name, size: st.size, modified: st.mtime });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // removed (or renamed into place) while we listed
        throw new StoreError(`cannot list ${this.url}: ${messageOf(err)}`, undefined, { cause: err });
      }
    }
    return files;
  }

  private async makeDirectory(): Promise<void> {
    try {
      await makeDirectory(this.dir);
    } catch (err) {
      throw new StoreError(`cannot create the directory of ${this.url}: ${messageOf(err)}`, 'check the path and the permissions of its parent directories', { cause: err });
    }
  }

  private async openPart(key: string): Promise<PartFile> {
    await this.makeDirectory();
    try {
      return PartFile.open(join(this.dir, key));
    } catch (err) {
      throw asStoreError(err);
    }
  }

  private async commit(part: PartFile): Promise<void> {
    try {
      await part.commit();
    } catch (err) {
      throw asStoreError(err);
    }
  }

  private dirError(err: unknown): ShieldError {
    if (err instanceof ShieldError) return err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      return new StoreError(`${this.url} does not exist`, 'create the directory (a backup creates it by itself), or fix the path');
    }
    if (code === 'ENOTDIR') return new StoreError(`${this.url} is not a directory`, 'give the path of a directory');
    if (code === 'EACCES' || code === 'EPERM') {
      return new StoreError(`no permission to list ${this.url}`, 'check the permissions of the directory and its parents', { cause: err });
    }
    return new StoreError(`cannot list ${this.url}: ${messageOf(err)}`, undefined, { cause: err });
  }
}

/** PartFile reports local-file failures; in a store they are the store's. */
function asStoreError(err: unknown): ShieldError {
  if (err instanceof FileError) return new StoreError(err.message, err.hint, { cause: err });
  return err instanceof ShieldError ? err : new StoreError(messageOf(err), undefined, { cause: err });
}

/** Waits until a file stream has let go of its descriptor (destroy closes it even without autoClose). */
async function closed(stream: WriteStream): Promise<void> {
  if (stream.closed) return;
  await new Promise<void>((resolve) => stream.once('close', () => resolve()).destroy());
}
