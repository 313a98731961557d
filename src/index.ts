/**
 * etcd-shield as a library: resolve a configuration from the field schema,
 * then back up, restore, verify or validate. Nothing here prints, exits or
 * reads process.argv or the environment; failures are the typed errors
 * below, each with its exit code, HTTP status and hint (ERROR_KINDS).
 */
export { resolveConfig, type Config, type AuthMode } from './config/config';
export { FIELDS, type FieldSpec } from './config/fields';
export { backup, type BackupRunOptions, type BackupSummary } from './api/backup';
export { snapshotBackup, type SnapshotBackupOptions, type SnapshotBackupSummary } from './api/snapshot-backup';
export { restore, type RestoreRunOptions, type RestoreSummary } from './api/restore';
export { verify, type VerifySummary } from './api/verify';
export { validate, type ValidationLine, type ValidationReport } from './api/validate';
export type { ArchiveInput, ArchiveOutput, OperationOptions, ProgressEvent } from './api/options';
export * from './errors';
export { TOOL_NAME, TOOL_VERSION } from './version';
export { backupToStore, type StoreBackupOptions, type StoredBackup } from './api/backup-to-store';
export { restoreFromStore, type StoreRestoreOptions, type StoreRestoreSummary } from './api/restore-from-store';
export { verifyStore, type StoreVerifyOptions, type StoreVerifyReport, type BackupCheck } from './api/verify-store';
export { listBackups, pruneStore, deleteBackups, catalogueJson, type CatalogueJson, type PruneOptions, type PruneReport, type DeleteOptions, type DeleteReport } from './api/catalogue';
export type { BackupEntry, Catalogue, Manifest, KeepRules, RetentionDecision, PrunePlan } from './api/catalogue';
export type { StoreRef, StoreOptions } from './api/store-ref';
export type { ObjectStore, StoredObject } from './store/types';
export type { Compression } from './pipeline/types';
export { readIdentityFile, readRecipientsFile, parseRecipients } from './pipeline/encryption';
export { followChanges, type FollowOptions, type FollowEvent } from './api/follow';
export { restoreToPoint, type PointRestoreOptions, type PointRestoreSummary } from './api/restore-to-point';
export type { StoreListing } from './api/catalogue';
