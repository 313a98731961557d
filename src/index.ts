/**
 * etcd-shield as a library: resolve a configuration from the field schema,
 * then back up, restore, verify or validate. Nothing here prints, exits or
 * reads process.argv or the environment; failures are the typed errors
 * below, each with its exit code, HTTP status and hint (ERROR_KINDS).
 */
export { resolveConfig, type Config, type AuthMode } from './config/config';
export { FIELDS, type FieldSpec } from './config/fields';
export { backup, type BackupRunOptions, type BackupSummary } from './api/backup';
export { restore, type RestoreRunOptions, type RestoreSummary } from './api/restore';
export { verify, type VerifySummary } from './api/verify';
export { validate, type ValidationLine, type ValidationReport } from './api/validate';
export type { ArchiveInput, ArchiveOutput, OperationOptions, ProgressEvent } from './api/options';
export * from './errors';
export { TOOL_NAME, TOOL_VERSION } from './version';
