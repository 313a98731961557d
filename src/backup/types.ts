export type BackupFormat = 'etcd-shield' | 'legacy';

export interface BackupOptions {
  prefix: string;
  format: BackupFormat;
  pageBytes?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
  /** Called once the revision is pinned, before the first byte is written. */
  onStart?: (start: BackupStart) => void;
}

export interface BackupStart {
  revision: string;
  /** Hexadecimal, as etcdctl prints it. */
  clusterId: string;
  takenAt: Date;
}

export interface BackupSummary {
  format: BackupFormat;
  revision: string;
  keys: number;
  leases: number;
  bytes: number;
}
