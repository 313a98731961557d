import { Client, credentials, Metadata, type ChannelCredentials } from '@grpc/grpc-js';
import type { Readable } from 'node:stream';
// The error classes alone: etcd3's index would load its whole client and parse rpc.proto.
import { castGrpcError } from 'etcd3/lib/errors';
import type { Config } from '../config/config';
import { CHANNEL_OPTIONS, grpcTarget, UNVERIFIED_TLS, warnInsecure } from './channel';
import { decodeAuthenticateToken, encodeAuthenticateRequest } from './maintenance-codec';
import { asIs } from './unary';

const AUTHENTICATE = '/etcdserverpb.Auth/Authenticate';
/**
 * etcd sends a snapshot as fast as the window lets it. The 8 MiB that keeps
 * Range pages flowing only holds more messages in memory here, and each is a
 * Buffer V8 frees late; 2 MiB still passes 200 MB/s at 10 ms of round trip
 * (docs/performance.md, "Snapshot mode").
 */
const STREAM_WINDOW = 2 * 1024 * 1024;

/**
 * A gRPC client for one etcd member, straight on grpc-js, for snapshot mode:
 * loading etcd3 and parsing its rpc.proto costs about 0.12 s and 9 MB at
 * start (docs/performance.md, "Snapshot mode"), while a snapshot needs two
 * calls. Requests and replies are bytes (maintenance-codec.ts). TLS and its
 * verification, user/password login and the per-request deadline are as
 * connect.ts sets them up for etcd3; there are no retries, as snapshot mode
 * asks each member alone. Errors come cast to etcd3's classes, as etcd3's
 * own, so explain.ts reads them the same way.
 */
export class MemberClient {
  private readonly client: Client;
  private metadata: Promise<Metadata> | undefined;

  constructor(
    private readonly config: Config,
    readonly endpoint: string,
    warn: (line: string) => void = () => undefined,
  ) {
    let creds: ChannelCredentials = credentials.createInsecure();
    if (config.secure) {
      if (config.insecureSkipVerify) warnInsecure(warn);
      // Without a CA, grpc-js falls back to the system roots.
      creds = credentials.createSsl(
        config.caCert ? Buffer.from(config.caCert) : null,
        config.clientKey ? Buffer.from(config.clientKey) : null,
        config.clientCert ? Buffer.from(config.clientCert) : null,
        config.insecureSkipVerify ? UNVERIFIED_TLS : undefined,
      );
    }
    this.client = new Client(grpcTarget(endpoint), creds, { ...CHANNEL_OPTIONS, 'grpc-node.flow_control_window': STREAM_WINDOW });
  }

  /** One call with the request and reply as bytes, under the configured deadline. */
  async unary(method: string, request: Buffer): Promise<Buffer> {
    return this.call(method, request, await this.auth());
  }

  /** A server-streaming call; its messages are the raw reply bytes. Streams have no deadline. */
  async serverStream(method: string, request: Buffer): Promise<Readable> {
    const metadata = await this.auth();
    return this.client.makeServerStreamRequest(method, asIs, asIs, request, metadata, {});
  }

  close(): void {
    this.client.close();
  }

  private call(method: string, request: Buffer, metadata: Metadata): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + this.config.timeoutMs;
      this.client.makeUnaryRequest(method, asIs, asIs, request, metadata, { deadline }, (err, reply) => (err ? reject(castGrpcError(err)) : resolve(reply!)));
    });
  }

  /** etcd's token for the configured user, asked for once per client; none without a password (a certificate's name is the user then). */
  private auth(): Promise<Metadata> {
    this.metadata ??= (async () => {
      const metadata = new Metadata();
      const { username, password } = this.config;
      if (username === undefined || password === undefined) return metadata;
      const reply = await this.call(AUTHENTICATE, encodeAuthenticateRequest(username, password), new Metadata());
      metadata.set('token', decodeAuthenticateToken(reply));
      return metadata;
    })();
    return this.metadata;
  }
}
