import { hostname } from 'node:os';
import type { RoleView } from './types';

/** Whether this instance runs the schedules. Without `ha` it always does; with it, etcd's election decides. */
export interface Role {
  view(): RoleView;
  isLeader(): boolean;
  /** Begins (campaigning); calls onChange(true) when this instance becomes leader, onChange(false) when it stops being it. */
  start(onChange: (leader: boolean) => void): Promise<void>;
  /** Resigns (if leader) and releases everything; resolves when done. */
  stop(): Promise<void>;
}

export function instanceId(): string {
  return `${hostname()}:${process.pid}`;
}

/** One instance alone: the leader from the start. */
export class SoloRole implements Role {
  readonly #instance = instanceId();

  view(): RoleView {
    return { leader: true, ha: false, instance: this.#instance };
  }

  isLeader(): boolean {
    return true;
  }

  async start(onChange: (leader: boolean) => void): Promise<void> {
    onChange(true);
  }

  async stop(): Promise<void> {}
}
