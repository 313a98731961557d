import type { SingleBar } from 'cli-progress';
import type { ProgressEvent } from '../api/options';

/** A progress bar on stderr when it is a terminal; silent under SHIELD or in a pipe. */
export class Progress {
  private bar: SingleBar | undefined;
  private label = '';

  constructor(private readonly enabled = Boolean(process.stderr.isTTY)) {}

  /** Takes the library's progress events: a new phase ends the last bar, counts move the current one. */
  readonly onEvent = (e: ProgressEvent): void => {
    if (e.phase !== this.label) {
      this.stop();
      this.label = e.phase;
    }
    if (e.total > 0 || e.done > 0) this.update(e.done, e.total);
  };

  private update(done: number, total: number): void {
    if (!this.enabled) return;
    if (!this.bar) {
      // Loaded here: runs without a terminal (SHIELD's) never pay for it.
      const { SingleBar: Bar } = require('cli-progress') as typeof import('cli-progress');
      this.bar = new Bar({
        stream: process.stderr,
        format: `${this.label || 'working'} [{bar}] {percentage}% {value}/{total} keys, {eta_formatted} left`,
        hideCursor: true,
        clearOnComplete: true,
        barsize: 30,
      });
      this.bar.start(Math.max(total, done), done);
    }
    this.bar.setTotal(Math.max(total, done));
    this.bar.update(done);
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}
