import { type Command, Option } from 'commander';
import type { StoreOptions } from '../api/store-ref';
import { COMPRESSIONS, type Compression } from '../pipeline/types';
import { positiveInt } from './context';

export interface StoreFlags {
  s3Endpoint?: string;
  s3PathStyle?: boolean;
  s3Ca?: string;
  s3Region?: string;
}

export interface EncryptFlags {
  compress?: Compression;
  encryptTo?: string[];
  encryptToFile?: string[];
}

export interface KeepFlags {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

/** How to reach an S3-compatible server; credentials and region come from the AWS SDK's usual chain (AWS_ACCESS_KEY_ID, AWS_PROFILE...). */
export function addStoreOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--s3-endpoint <url>', 'S3-compatible server, e.g. https://minio.local:9000').env('AWS_ENDPOINT_URL_S3'))
    .addOption(new Option('--s3-path-style', 'address buckets as ENDPOINT/BUCKET rather than BUCKET.ENDPOINT (most private servers need it)').env('ETCD_SHIELD_S3_PATH_STYLE'))
    .addOption(new Option('--s3-ca <file>', 'CA certificate (PEM) that signed a private S3 server\'s certificate').env('ETCD_SHIELD_S3_CA'))
    .addOption(new Option('--s3-region <region>', 'S3 region (default: the AWS SDK\'s, from AWS_REGION or the profile)'));
}

export function storeOptions(f: StoreFlags): StoreOptions {
  return { cwd: process.cwd(), s3: { endpoint: f.s3Endpoint, forcePathStyle: f.s3PathStyle, caFile: f.s3Ca, region: f.s3Region } };
}

export function addEncryptOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--compress <kind>', 'compression of the stored archive (default zstd)').choices(COMPRESSIONS as string[]))
    .addOption(new Option('--encrypt-to <recipient>', 'encrypt with age to this X25519 recipient (age1...); repeat for several').argParser(collect))
    .addOption(new Option('--encrypt-to-file <file>', 'encrypt with age to every recipient in this file (one per line, as age -R reads)').argParser(collect));
}

export function addIdentityOption(cmd: Command): Command {
  return cmd.addOption(
    new Option('--identity <file>', 'age identity file (as age-keygen writes) that decrypts an encrypted backup; repeat for several').argParser(collect),
  );
}

export function addKeepOptions(cmd: Command): Command {
  for (const [rule, what] of [
    ['last', 'the N newest backups'],
    ['hourly', 'the newest backup of each of the last N hours that have one'],
    ['daily', 'the newest backup of each of the last N days that have one'],
    ['weekly', 'the newest backup of each of the last N ISO weeks that have one'],
    ['monthly', 'the newest backup of each of the last N months that have one'],
    ['yearly', 'the newest backup of each of the last N years that have one'],
  ]) {
    cmd.addOption(new Option(`--keep-${rule} <n>`, `keep ${what}`).argParser(positiveInt(`keep-${rule}`)));
  }
  return cmd;
}
