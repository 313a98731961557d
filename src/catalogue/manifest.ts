import * as v from 'valibot';
import { ArchiveError } from '../errors';
import { COMPRESSIONS } from '../pipeline/types';
import { manifestKey } from './naming';

/** A manifest is small; anything larger is not one of ours. */
export const MANIFEST_MAX_BYTES = 64 * 1024;
export const MANIFEST_VERSION = 1;

const Int64String = v.pipe(v.string(), v.regex(/^\d+$/));
const Count = v.pipe(v.number(), v.integer(), v.minValue(0));

/**
 * What a store knows of a backup without reading its archive. Written
 * after the archive is stored, so a backup without one is incomplete. It
 * holds counts, sizes and checksums, never key names or values.
 */
const ManifestSchema = v.object({
  kind: v.literal('etcd-shield-backup'),
  version: v.literal(MANIFEST_VERSION),
  name: v.string(),
  /** The archive object's key, beside the manifest. */
  archive: v.string(),
  /** When the backup's revision was read (ISO 8601, UTC). */
  takenAt: v.pipe(v.string(), v.isoTimestamp()),
  /** Hexadecimal, as etcdctl prints it. */
  clusterId: v.string(),
  revision: Int64String,
  prefix: v.string(),
  /** At the revision (for a snapshot: what a restore of it writes). */
  keys: Count,
  leases: Count,
  /** etcd-shield's archive, or etcd's own snapshot (backup --mode snapshot; prefix is then empty). */
  format: v.picklist(['etcd-shield', 'etcd-snapshot']),
  compression: v.picklist(COMPRESSIONS),
  encryption: v.object({
    type: v.picklist(['none', 'age']),
    /** Public recipients (age1...), so an operator can tell which key opens it. */
    recipients: v.array(v.string()),
  }),
  /** Bytes of the archive itself, then as stored (compressed and encrypted). */
  archiveBytes: Count,
  storedBytes: Count,
  /** Of the stored bytes: a download is checked against it before anything is decoded into etcd. */
  storedSha256: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/)),
  tool: v.string(),
});

export type Manifest = v.InferOutput<typeof ManifestSchema>;

export function encodeManifest(m: Manifest): Buffer {
  return Buffer.from(`${JSON.stringify(m, null, 2)}\n`);
}

/** Throws an ArchiveError naming the key and the first bad field. */
export function parseManifest(bytes: Buffer, key: string): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new ArchiveError(`manifest ${key} is not valid JSON: ${(err as Error).message}`, 'the manifest is damaged; the backup it describes cannot be trusted');
  }
  const r = v.safeParse(ManifestSchema, json);
  if (!r.success) {
    const issue = r.issues[0];
    const path = v.getDotPath(issue) ?? '(top level)';
    throw new ArchiveError(`manifest ${key} is not an etcd-shield manifest: ${path}: ${issue.message}`, 'the manifest is damaged or from another tool');
  }
  if (manifestKey(r.output.name) !== key) {
    throw new ArchiveError(`manifest ${key} names another backup (${r.output.name})`, 'the manifest was renamed or copied; the backup it describes cannot be trusted');
  }
  return r.output;
}
