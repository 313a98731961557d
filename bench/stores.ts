// The store cases of the benchmark (issue 13): what bench.ts needs to time
// backups into a real S3-compatible server (s3rver) with zstd and age, and the
// compression report (each compression choice once, into a directory store).
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** s3rver's credentials; the region only has to be there for the AWS SDK. */
export const S3_ENV = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' };
export const S3_BUCKET = 'bench';

/** The compression report's rows: every --compress choice, and the S3 tool's zstd + age for comparison. */
export const COMPRESSION_CHOICES = [
  { name: 'zstd', compress: 'zstd', age: false },
  { name: 'gzip', compress: 'gzip', age: false },
  { name: 'none', compress: 'none', age: false },
  { name: 'zstd+age', compress: 'zstd', age: true },
] as const;

/**
 * The inherited environment with only s3rver's AWS settings: an operator's
 * AWS_PROFILE, AWS_SESSION_TOKEN or AWS_ENDPOINT_URL would send the backup elsewhere.
 */
export function s3Env(base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(base)) if (!k.startsWith('AWS_')) env[k] = v;
  return { ...env, ...S3_ENV };
}

export interface AgeKey {
  file: string;
  recipient: string;
}

/** A fresh age key pair, made by age-keygen as an operator would. */
export function ageKey(file: string): AgeKey {
  fs.rmSync(file, { force: true }); // age-keygen -o will not replace a file
  execFileSync('age-keygen', ['-o', file], { stdio: 'ignore' });
  return { file, recipient: execFileSync('age-keygen', ['-y', file], { encoding: 'utf8' }).trim() };
}

/** What the benchmark reads from a backup's manifest (docs/store-layout.md). */
export interface Manifest {
  name: string;
  keys: number;
  compression: string;
  encryption: { type: string };
  archiveBytes: number;
  storedBytes: number;
}

/** The backup's name from `backup --to`'s last line, `stored as NAME in STORE`. */
export function storedName(stderr: string): string {
  const m = /^stored as (\S+) in /m.exec(stderr);
  if (!m) throw new Error(`backup --to printed no "stored as NAME": ${stderr.slice(-2000)}`);
  return m[1]!;
}

/** Untimed: the manifest of backup `name`, as `list --from STORE --json` reads it. */
export function manifestOf(shield: string, store: string, name: string, extraArgs: string[], env: NodeJS.ProcessEnv): Promise<Manifest> {
  return new Promise((resolve, reject) => {
    execFile(shield, ['list', '--from', store, '--json', ...extraArgs], { env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`list --from ${store} failed: ${err.message}\n${stderr.slice(-2000)}`));
      try {
        const { backups } = JSON.parse(stdout) as { backups: Manifest[] };
        const m = backups.find((b) => b.name === name);
        if (!m) throw new Error(`list --from ${store} does not show backup ${name} (it shows ${backups.length} others)`);
        resolve(m);
      } catch (e) {
        reject(e as Error);
      }
    });
  });
}

/** A choice of the compression report: one measured backup into an empty directory store. */
export interface CompressionRow {
  choice: string;
  wallS: number;
  rssMb: number;
  cpuS: number;
  archiveBytes: number;
  storedBytes: number;
}

/** Or why that choice did not run. */
export interface CompressionMiss {
  choice: string;
  failure: string;
}

export type CompressionResult = CompressionRow | CompressionMiss;

const MB = 1024 * 1024;
const fmt = (n: number, digits: number) => n.toLocaleString('en', { maximumFractionDigits: digits, minimumFractionDigits: digits });

export const COMPRESSION_HEAD = ['compression', 'wall s', 'archive MB', 'stored MB', 'ratio', 'archive MB/s', 'peak RSS MB', 'CPU s'];

/** Ratio is archive ÷ stored bytes (above 1: it saved space); MB/s is the archive's bytes over wall time. */
export function compressionCells(r: CompressionResult): string[] {
  if ('failure' in r) return [r.choice, 'failed', '', '', '', '', '', ''];
  return [
    r.choice,
    fmt(r.wallS, 2),
    fmt(r.archiveBytes / MB, 1),
    fmt(r.storedBytes / MB, 1),
    `${fmt(r.archiveBytes / r.storedBytes, 3)}×`,
    fmt(r.archiveBytes / MB / r.wallS, 1),
    fmt(r.rssMb, 0),
    Number.isNaN(r.cpuS) ? '' : fmt(r.cpuS, 2),
  ];
}

export const compressionFailures = (rows: CompressionResult[]) => rows.flatMap((r) => ('failure' in r ? [`${r.choice}: ${r.failure}`] : []));

/** A fresh, empty directory store for one choice. */
export function emptyDir(dir: string): string {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  fs.mkdirSync(dir);
  return dir;
}

/** An error's first lines, for a one-line report. */
export const firstLines = (err: unknown) => String((err as Error)?.message ?? err).split('\n').slice(0, 3).join(' ').trim();
