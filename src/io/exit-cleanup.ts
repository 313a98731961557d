import { rmSync } from 'node:fs';

// Paths removed however the process ends, a second Ctrl-C included (the
// signal handler emits 'exit' before it dies), so a failed run leaves no
// temporary file or part file behind.
const live = new Set<string>();
let installed = false;

/** Removes `path` (a file or a whole directory) at exit unless forgotten first. */
export function removeAtExit(path: string): void {
  if (!installed) {
    installed = true;
    process.on('exit', () => {
      for (const p of live) rmSync(p, { recursive: true, force: true });
    });
  }
  live.add(path);
}

/** The path was renamed into place or removed already. */
export function keepAtExit(path: string): void {
  live.delete(path);
}
