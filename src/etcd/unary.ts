import { castGrpcError, EtcdInvalidAuthTokenError } from 'etcd3/lib/errors';
import type { Connection } from './connect';

export const asIs = (b: Buffer): Buffer => b;

// The two pieces of etcd3's connection pool (a protected member of Etcd3 in
// etcd3 1.1, which package.json pins) that a call with raw bytes needs.
export interface GrpcClient {
  makeUnaryRequest(
    method: string,
    serialize: (b: Buffer) => Buffer,
    deserialize: (b: Buffer) => Buffer,
    argument: Buffer,
    metadata: unknown,
    options: { deadline: number },
    callback: (err: Error | null, value?: Buffer) => void,
  ): unknown;
}

interface Pool {
  withConnection<T>(service: 'KV', fn: (c: { client: GrpcClient; metadata: unknown }) => Promise<T> | T): Promise<T>;
}

export function poolOf(conn: Connection): Pool {
  const pool = (conn.client as unknown as { pool?: Partial<Pool> }).pool;
  if (typeof pool?.withConnection !== 'function') {
    throw new Error('this etcd3 client library no longer exposes its connection pool; etcd-shield needs etcd3 1.1.x (reinstall with npm ci)');
  }
  return pool as Pool;
}

/**
 * One KV call whose request and reply stay bytes (no protobufjs objects).
 * It goes through etcd3's own pool, so TLS, the auth token, member health and
 * retries are the same as for any other call. The request buffer is the
 * caller's again once the promise settles.
 *
 * etcd drops an auth token left idle longer than its --auth-token-ttl (a slow
 * reader can hold a backup that long). etcd3 logs in again when one of its own
 * calls meets that error, so `renew` makes a small etcd3 call the user is
 * allowed, and the request is sent once more.
 */
export async function kvUnary(conn: Connection, method: 'Range' | 'Txn', request: Buffer, renew: () => Promise<unknown>): Promise<Buffer> {
  const pool = poolOf(conn);
  const path = `/etcdserverpb.KV/${method}`;
  const call = () =>
    pool.withConnection('KV', ({ client, metadata }) => {
      return new Promise<Buffer>((resolve, reject) => {
        const deadline = Date.now() + conn.config.timeoutMs;
        // Cast as etcd3 casts its own calls' errors: the retry and member-health policies go by the etcd3 error classes.
        client.makeUnaryRequest(path, asIs, asIs, request, metadata, { deadline }, (err, value) => (err ? reject(castGrpcError(err)) : resolve(value!)));
      });
    });
  return conn.retrying(async () => {
    try {
      return await call();
    } catch (err) {
      if (!(err instanceof EtcdInvalidAuthTokenError)) throw err;
      await renew();
      return call();
    }
  });
}
