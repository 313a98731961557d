import { randomBytes } from 'node:crypto';

/**
 * A backup's name sorts by time and says what it is: the UTC second it was
 * taken, the revision, and a few random hex digits so that two runs into
 * one store in the same second (at the same revision) never collide.
 * Example: 2026-12-02T03-00-00Z-r123456-9f3a.
 */
const NAME = /^(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2})Z-r(\d+)-([0-9a-f]{4,})$/;

export const MANIFEST_SUFFIX = '.manifest.json';
export const ARCHIVE_INFIX = '.archive';
/** An etcd snapshot keeps the name etcdctl gives one, so that decoding the object gives a `.db` file. */
export const SNAPSHOT_INFIX = '.db';

export function backupName(takenAt: Date, revision: string): string {
  const stamp = takenAt.toISOString().slice(0, 19).replace(/:/g, '-');
  return `${stamp}Z-r${revision}-${randomBytes(2).toString('hex')}`;
}

export function isBackupName(name: string): boolean {
  return NAME.test(name);
}

/** The time a name records (to the second), or undefined for a name that is not one of ours. */
export function timeOfName(name: string): Date | undefined {
  const m = NAME.exec(name);
  return m ? new Date(`${m[1]}T${m[2]}:${m[3]}:${m[4]}Z`) : undefined;
}

export function manifestKey(name: string): string {
  return name + MANIFEST_SUFFIX;
}

/** The archive object's key: the name, ".archive" (".db" for an etcd snapshot), then what was done to it (".zst", ".gz", ".age"). */
export function archiveKey(name: string, extension: string, format: 'etcd-shield' | 'etcd-snapshot' = 'etcd-shield'): string {
  return name + (format === 'etcd-snapshot' ? SNAPSHOT_INFIX : ARCHIVE_INFIX) + extension;
}

/** What an object key belongs to: a backup's manifest, its archive (or snapshot), or neither. */
export function classifyKey(key: string): { name: string; role: 'manifest' | 'archive' } | undefined {
  // A name has no dot: what follows the first one says what the object is.
  const dot = key.indexOf('.');
  if (dot < 0 || !isBackupName(key.slice(0, dot))) return undefined;
  const name = key.slice(0, dot);
  const rest = key.slice(dot);
  if (rest === MANIFEST_SUFFIX) return { name, role: 'manifest' };
  const storedAs = (infix: string) => rest === infix || rest.startsWith(`${infix}.`);
  return storedAs(ARCHIVE_INFIX) || storedAs(SNAPSHOT_INFIX) ? { name, role: 'archive' } : undefined;
}
