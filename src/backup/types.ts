export type BackupFormat = 'etcd-shield' | 'legacy';

export interface BackupOptions {
  prefix: string;
  format: BackupFormat;
  pageBytes?: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

export interface BackupSummary {
  format: BackupFormat;
  revision: string;
  keys: number;
  leases: number;
  bytes: number;
}
