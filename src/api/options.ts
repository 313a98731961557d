import type { Readable, Writable } from 'node:stream';

/** Where a phase of an operation stands; `total` is 0 while it is not known. */
export interface ProgressEvent {
  phase: string;
  done: number;
  total: number;
}

/** What every operation takes besides its input. */
export interface OperationOptions {
  /** Stops the operation at its next safe point; it then throws a CancelledError (or a RestoreInterruptedError). */
  signal?: AbortSignal;
  onProgress?: (event: ProgressEvent) => void;
  /** Things worth telling an operator that do not stop the run (a member failed, etcd is overloaded...). */
  onWarning?: (message: string) => void;
}

/** An archive file (read in place), or a stream (copied to a private temporary file, since restore reads it twice). */
export type ArchiveInput = Readable | { file: string };

/**
 * A stream (ended when the backup ends), or a file written beside its name
 * and renamed into place only once complete and on disk.
 */
export type ArchiveOutput = Writable | { file: string };

export function isFile(x: ArchiveInput | ArchiveOutput): x is { file: string } {
  return typeof (x as { file?: unknown }).file === 'string';
}

/** Reports each phase once at its start, then its progress. */
export function phases(onProgress: OperationOptions['onProgress']): {
  phase(name: string): void;
  progress(done: number, total: number): void;
} {
  let current = '';
  return {
    phase(name) {
      current = name;
      onProgress?.({ phase: name, done: 0, total: 0 });
    },
    progress(done, total) {
      onProgress?.({ phase: current, done, total });
    },
  };
}
