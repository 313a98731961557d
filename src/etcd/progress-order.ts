import type { Config } from '../config/config';
import { endpointStatuses } from './status';

/**
 * Whether etcd of this version keeps its answer to a watch progress request
 * in order with the events: since 3.4.25 and 3.5.8 (etcd-io/etcd#15697 and
 * #15695). Before, the answer leaves at once with the newest revision, ahead
 * of events still queued for the stream or, for a watch catching up, still
 * to be read from the history.
 */
export function ordersRequestedProgress(version: string): boolean {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!m) return false;
  const [major, minor, patch] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (major !== 3) return major > 3;
  if (minor === 4) return patch >= 25;
  if (minor === 5) return patch >= 8;
  return minor > 5;
}

export interface ProgressOrder {
  ordered: boolean;
  /** The versions the members that answered run. */
  versions: string[];
}

/** Ordered only if every member that answers runs such a version (a member down now is asked again at the next watch). */
export async function requestedProgressOrder(config: Config): Promise<ProgressOrder> {
  const versions = [...new Set((await endpointStatuses(config)).flatMap((s) => (s.status ? [s.status.version] : [])))];
  return { ordered: versions.length > 0 && versions.every(ordersRequestedProgress), versions };
}
