import type { ObjectStore, StoredObject } from '../store/types';
import { ShieldError } from '../errors';
import { mapLimit } from '../util/concurrency';
import { MANIFEST_MAX_BYTES, type Manifest, parseManifest } from './manifest';
import { classifyKey } from './naming';

/** A complete backup: its manifest is stored, and names an archive that is there. */
export interface BackupEntry {
  name: string;
  manifest: Manifest;
  takenAt: Date;
  manifestKey: string;
  archive: StoredObject;
}

/** What a store holds, read from its listing and its manifests only (never an archive). */
export interface Catalogue {
  /** Oldest first. */
  backups: BackupEntry[];
  /** Archives with no manifest: runs that failed, were stopped, or are still being written. */
  incomplete: StoredObject[];
  /** Manifests that cannot be read or describe an archive that is missing; their backups are not listed. */
  problems: { key: string; message: string }[];
}

const MANIFEST_READS = 8;

/** `listing`: the store's listing when the caller has one (it also reads the change log from it), so the store is listed once. */
export async function readCatalogue(store: ObjectStore, signal?: AbortSignal, listing?: StoredObject[]): Promise<Catalogue> {
  const objects = listing ?? (await store.list(signal));
  const byKey = new Map(objects.map((o) => [o.key, o]));
  const manifests = objects.filter((o) => classifyKey(o.key)?.role === 'manifest');
  const described = new Set<string>();
  /** Backups whose manifest cannot be read: their archives are left alone, not taken for incomplete runs. */
  const troubled = new Set<string>();
  const problems: Catalogue['problems'] = [];

  const read = await mapLimit(manifests, MANIFEST_READS, signal, async (o): Promise<BackupEntry | undefined> => {
    let manifest: Manifest;
    try {
      manifest = parseManifest(await store.readBytes(o.key, MANIFEST_MAX_BYTES, signal), o.key);
    } catch (err) {
      if (!(err instanceof ShieldError) || err.kind === 'cancelled' || err.kind === 'store') throw err;
      problems.push({ key: o.key, message: err.message });
      troubled.add(classifyKey(o.key)?.name ?? '');
      return undefined;
    }
    described.add(manifest.archive);
    const archive = byKey.get(manifest.archive);
    if (!archive) {
      problems.push({ key: o.key, message: `manifest ${o.key} names archive ${manifest.archive}, which the store does not hold` });
      return undefined;
    }
    return { name: manifest.name, manifest, takenAt: new Date(manifest.takenAt), manifestKey: o.key, archive };
  });

  const backups = read.filter((b): b is BackupEntry => b !== undefined).sort(byTime);
  const incomplete = objects.filter((o) => {
    const c = classifyKey(o.key);
    return c?.role === 'archive' && !described.has(o.key) && !troubled.has(c.name);
  });
  problems.sort((a, b) => a.key.localeCompare(b.key));
  return { backups, incomplete, problems };
}

export function byTime(a: BackupEntry, b: BackupEntry): number {
  return a.takenAt.getTime() - b.takenAt.getTime() || a.name.localeCompare(b.name);
}
