import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  paginateListObjectsV2,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { readFileSync } from 'node:fs';
import { Agent as HttpsAgent } from 'node:https';
import { Readable } from 'node:stream';
import { CancelledError, ShieldError, StoreError, UsageError } from '../errors';
import { checkKey, keyProblem } from './keys';
import { deniedOnly, s3Error, type S3Call } from './s3-errors';
import { uploadStream } from './s3-upload';
import { bodyFailure, cancelled, guarded, messageOf, readAtMost, tooLarge } from './streams';
import type { ObjectStore, StoredObject } from './types';

const MiB = 1024 * 1024;
/** S3's smallest part but the last. */
const MIN_PART_SIZE = 5 * MiB;
const DEFAULT_PART_SIZE = 8 * MiB;
const DEFAULT_QUEUE_SIZE = 2;
const CONNECT_TIMEOUT_MS = 10_000;
/** A connection silent this long is given up (a stopped server would otherwise hold a backup forever). */
const IDLE_TIMEOUT_MS = 120_000;
/** S3-compatible servers rarely care about the region, but the request signature needs one. */
const CUSTOM_ENDPOINT_REGION = 'us-east-1';

export interface S3StoreOptions {
  bucket: string;
  /** Without leading or trailing "/"; "" for the top of the bucket. */
  prefix: string;
  /** An S3-compatible server (http://127.0.0.1:9000). Otherwise the SDK's own: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the profile's endpoint_url, else AWS. */
  endpoint?: string;
  /** host/bucket/key addressing; by default on whenever a custom endpoint is in use. */
  forcePathStyle?: boolean;
  /** PEM file with the CA that signed a private server's certificate; it replaces the system's CAs. */
  caFile?: string;
  /** Otherwise AWS_REGION or the profile's; with a custom endpoint and none configured, us-east-1. */
  region?: string;
  /** For library callers and tests; otherwise the SDK's default chain (environment, profile, SSO, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Bytes per uploaded part, at least 5 MiB (default 8 MiB). A put holds about queueSize + 1 parts in memory. */
  partSize?: number;
  /** Parts uploaded at once (default 2). */
  queueSize?: number;
}

interface Connection {
  client: S3Client;
  /** As shown in messages. */
  endpoint: string;
}

/** Objects directly under s3://bucket/prefix/. Credentials and region come from the AWS SDK's default chain unless given. */
export class S3Store implements ObjectStore {
  readonly url: string;
  private readonly keyPrefix: string;
  private readonly ca: string | undefined;
  private readonly partSize: number;
  private readonly queueSize: number;
  private connection: Promise<Connection> | undefined;
  /** Until connected: the endpoint as far as it is known. */
  private endpoint: string;

  constructor(private readonly opts: S3StoreOptions) {
    this.url = `s3://${opts.bucket}${opts.prefix ? `/${opts.prefix}` : ''}`;
    this.keyPrefix = opts.prefix ? `${opts.prefix}/` : '';
    this.endpoint = opts.endpoint ?? 'the S3 endpoint';
    this.partSize = opts.partSize ?? DEFAULT_PART_SIZE;
    this.queueSize = opts.queueSize ?? DEFAULT_QUEUE_SIZE;
    if (!Number.isInteger(this.partSize) || this.partSize < MIN_PART_SIZE) {
      throw new UsageError(`S3 part size ${this.partSize} is too small for ${this.url}`, `give at least ${MIN_PART_SIZE} bytes (5 MiB)`);
    }
    if (!Number.isInteger(this.queueSize) || this.queueSize < 1) {
      throw new UsageError(`S3 upload queue size ${this.queueSize} is not usable for ${this.url}`, 'give a whole number of parts, 1 or more');
    }
    this.ca = opts.caFile === undefined ? undefined : readCa(opts.caFile, this.url);
  }

  async check(signal?: AbortSignal): Promise<void> {
    await this.call(`checking ${this.url}`, signal, undefined, (client) =>
      client.send(new ListObjectsV2Command({ Bucket: this.opts.bucket, Prefix: this.keyPrefix || undefined, MaxKeys: 1 }), { abortSignal: signal }),
    );
  }

  async prepare(signal?: AbortSignal): Promise<void> {
    try {
      await this.check(signal);
    } catch (err) {
      // A write-only policy may not list; its upload will say whether it may write.
      if (!deniedOnly(err)) throw err;
    }
  }

  async list(signal?: AbortSignal): Promise<StoredObject[]> {
    return this.call(`listing ${this.url}`, signal, undefined, async (client) => {
      const objects: StoredObject[] = [];
      const pages = paginateListObjectsV2(
        { client },
        { Bucket: this.opts.bucket, Prefix: this.keyPrefix || undefined, Delimiter: '/' },
        { abortSignal: signal },
      );
      for await (const page of pages) {
        for (const o of page.Contents ?? []) {
          const key = o.Key?.slice(this.keyPrefix.length) ?? '';
          if (keyProblem(key)) continue;
          objects.push({ key, size: o.Size ?? 0, modified: o.LastModified ?? new Date(0) });
        }
      }
      return objects;
    });
  }

  async read(key: string, signal?: AbortSignal): Promise<Readable> {
    checkKey(key, this.url);
    const doing = `reading ${key} from ${this.url}`;
    return this.call(doing, signal, key, async (client) => {
      const got = await client.send(new GetObjectCommand({ Bucket: this.opts.bucket, Key: this.keyPrefix + key }), { abortSignal: signal });
      if (!(got.Body instanceof Readable)) throw new StoreError(`S3 sent no content for ${key} in ${this.url}`);
      return guarded(got.Body, (err) => s3Error(err, this.describe(doing, signal, key)), doing, signal);
    });
  }

  async readBytes(key: string, maxBytes: number, signal?: AbortSignal): Promise<Buffer> {
    return readAtMost(await this.read(key, signal), maxBytes, () => tooLarge(key, this.url, maxBytes));
  }

  async put(key: string, body: Readable, signal?: AbortSignal): Promise<{ bytes: number }> {
    const doing = `writing ${key} to ${this.url}`;
    let client: S3Client;
    try {
      checkKey(key, this.url);
      if (signal?.aborted) throw cancelled(doing);
      client = (await this.connect()).client;
    } catch (err) {
      body.destroy();
      throw s3Error(err, this.describe(doing, signal));
    }
    const outcome = await uploadStream(
      { client, bucket: this.opts.bucket, objectKey: this.keyPrefix + key, partSize: this.partSize, queueSize: this.queueSize },
      body,
      signal,
    );
    if ('bytes' in outcome) return outcome;
    const leftovers = outcome.leftovers.length ? `; ${outcome.leftovers.join('; ')}` : '';
    if (outcome.by === 'signal') {
      const stopped = new CancelledError(`stopped by a signal while ${doing}${leftovers}`);
      stopped.leftovers = outcome.leftovers;
      throw stopped;
    }
    // An error of ours from upstream keeps its kind; the leftovers matter less than its cause.
    if (outcome.by === 'body' && outcome.error instanceof ShieldError) throw outcome.error;
    const err = outcome.by === 'body' ? bodyFailure(outcome.error, key, this.url) : s3Error(outcome.error, this.describe(doing, undefined, undefined));
    err.message += leftovers;
    throw err;
  }

  async putBytes(key: string, data: Buffer, signal?: AbortSignal): Promise<void> {
    checkKey(key, this.url);
    await this.call(`writing ${key} to ${this.url}`, signal, undefined, (client) =>
      client.send(new PutObjectCommand({ Bucket: this.opts.bucket, Key: this.keyPrefix + key, Body: data, ContentLength: data.length }), { abortSignal: signal }),
    );
  }

  async remove(key: string, signal?: AbortSignal): Promise<void> {
    checkKey(key, this.url);
    await this.call(`removing ${key} from ${this.url}`, signal, undefined, (client) =>
      client.send(new DeleteObjectCommand({ Bucket: this.opts.bucket, Key: this.keyPrefix + key }), { abortSignal: signal }),
    );
  }

  close(): void {
    void this.connection?.then(
      ({ client }) => client.destroy(),
      () => undefined,
    );
  }

  private async call<T>(doing: string, signal: AbortSignal | undefined, key: string | undefined, fn: (client: S3Client) => Promise<T>): Promise<T> {
    try {
      if (signal?.aborted) throw cancelled(doing);
      return await fn((await this.connect()).client);
    } catch (err) {
      throw s3Error(err, this.describe(doing, signal, key));
    }
  }

  private describe(doing: string, signal?: AbortSignal, key?: string): S3Call {
    return { storeUrl: this.url, bucket: this.opts.bucket, endpoint: this.endpoint, doing, key, signal };
  }

  private connect(): Promise<Connection> {
    this.connection ??= this.open();
    return this.connection;
  }

  /**
   * The client, once what must be fixed at its creation is known: a client
   * with no settings of its own shows what the SDK found in the environment
   * and the profile (an endpoint, a region).
   */
  private async open(): Promise<Connection> {
    const defaults = new S3Client({});
    try {
      const configured = this.opts.endpoint ?? (await configuredEndpoint(defaults));
      const region =
        this.opts.region ?? (await defaults.config.region().catch(() => undefined)) ?? (configured === undefined ? undefined : CUSTOM_ENDPOINT_REGION);
      if (region === undefined) {
        throw new StoreError(
          `no AWS region is configured for ${this.url}`,
          'set AWS_REGION (or region in the AWS profile) to the bucket\'s region, or give the endpoint of an S3-compatible server',
        );
      }
      const client = new S3Client({
        region,
        endpoint: this.opts.endpoint,
        forcePathStyle: this.opts.forcePathStyle ?? configured !== undefined,
        credentials: this.opts.credentials,
        followRegionRedirects: true,
        requestHandler: {
          connectionTimeout: CONNECT_TIMEOUT_MS,
          socketTimeout: IDLE_TIMEOUT_MS,
          // An agent of our own: given only agent options, the SDK drops them for its 100-continue requests (every part).
          ...(this.ca === undefined ? {} : { httpsAgent: new HttpsAgent({ ca: this.ca, keepAlive: true, maxSockets: 50 }) }),
        },
      });
      this.endpoint = configured ?? `https://s3.${region}.amazonaws.com`;
      return { client, endpoint: this.endpoint };
    } finally {
      defaults.destroy();
    }
  }
}

/**
 * The endpoint the SDK takes from AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL or
 * the profile. The SDK applies it by itself; we only need to know whether
 * there is one (for the region and path style defaults, and messages).
 */
async function configuredEndpoint(client: S3Client): Promise<string | undefined> {
  const provider = (client.config as { serviceConfiguredEndpoint?: () => Promise<string | undefined> }).serviceConfiguredEndpoint;
  if (typeof provider !== 'function') return undefined;
  try {
    return (await provider()) || undefined;
  } catch (err) {
    throw new StoreError(`the AWS configuration names no usable S3 endpoint: ${messageOf(err)}`, 'check endpoint_url and the services section of the AWS profile');
  }
}

function readCa(file: string, storeUrl: string): string {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new StoreError(`cannot read the CA file ${file} for ${storeUrl}: ${messageOf(err)}`, 'give a readable PEM file with the CA certificate');
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new StoreError(`the CA file ${file} for ${storeUrl} holds no PEM certificate`, 'give the CA certificate in PEM form (-----BEGIN CERTIFICATE-----)');
  }
  return pem;
}
