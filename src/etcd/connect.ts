import { Etcd3, IOptions } from 'etcd3';
import type { Config } from '../config/config';
import { CHANNEL_OPTIONS, UNVERIFIED_TLS, warnInsecure } from './channel';
import { isMemberFailure, isOverloaded, isTimeout, isTransient, MemberSkipped, shortGrpcMessage } from './classify';

/** Tries per request (the first included) before giving up. */
const ATTEMPTS = 7;
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 2000;
/** How long a member that failed is skipped while others answer. */
const SKIP_FAILED_MEMBER_MS = 5000;

export interface Connection {
  client: Etcd3;
  config: Config;
  /** Runs a request under the connection's retry policy (what etcd3 applies to its own calls). */
  retrying<T>(call: () => Promise<T>): Promise<T>;
  close(): void;
}

export interface ConnectOptions {
  /** Fail on the first error instead of retrying (for probing one endpoint). */
  retry?: boolean;
  /** Tries per request when retrying (default 7: rides out a leader election). */
  attempts?: number;
  /** Where warnings for the operator go (a member failed, etcd is overloaded); dropped when absent. */
  warn?: (line: string) => void;
}

const ignore = () => undefined;

/**
 * Opens a client for the configured cluster. `timeout` becomes a deadline on
 * every single request attempt (connecting included), never on the whole run.
 * A request that fails for want of a member is retried on the others, with
 * backoff, so losing one member of several (or a leader election) does not
 * fail a backup or restore.
 */
export function connect(config: Config, hosts: string[] = config.endpoints, opts: ConnectOptions = {}): Connection {
  const warn = opts.warn ?? ignore;
  const options: IOptions = {
    hosts,
    grpcOptions: { ...CHANNEL_OPTIONS },
    // Streams (watch, snapshot) live as long as they need; only unary calls get the deadline.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + config.timeoutMs }),
  };
  if (config.secure) {
    options.credentials = {
      // Without a CA, grpc-js falls back to the system roots.
      rootCertificate: config.caCert ? Buffer.from(config.caCert) : (undefined as unknown as Buffer),
      certChain: config.clientCert ? Buffer.from(config.clientCert) : undefined,
      privateKey: config.clientKey ? Buffer.from(config.clientKey) : undefined,
    };
  }
  if (config.username !== undefined && config.password !== undefined) {
    options.auth = { username: config.username, password: config.password };
  }
  let global: Policy = NO_POLICY;
  if (opts.retry === false) {
    options.faultHandling = { global, host: () => NO_POLICY } as unknown as IOptions['faultHandling'];
  } else {
    const members = new MemberHealth(hosts, warn);
    global = new RetryPolicy(opts.attempts ?? ATTEMPTS, warn);
    options.faultHandling = {
      global,
      host: (host: string) => members.policyFor(host),
    } as unknown as IOptions['faultHandling'];
  }

  let client: Etcd3;
  if (config.secure && config.insecureSkipVerify) {
    warnInsecure(warn);
    client = withUnverifiedTls(() => new Etcd3(options));
  } else {
    client = new Etcd3(options);
  }
  return {
    client,
    config,
    retrying: (call) => global.execute(call),
    close: () => client.close(),
  };
}

interface GrpcCredentialsModule {
  credentials: { createSsl: (rootCerts: unknown, privateKey: unknown, certChain: unknown, verify?: object) => unknown };
}

/**
 * etcd3 builds its grpc-js TLS credentials itself, synchronously, while its
 * constructor runs, and offers no way to pass grpc-js's verifyOptions. For
 * that moment only, its createSsl is wrapped to add them. If etcd3 ever stops
 * calling it there, we refuse rather than silently verify (or not).
 */
function withUnverifiedTls(build: () => Etcd3): Etcd3 {
  // Our own dependency, which npm dedupes with etcd3's (package.json keeps the
  // two ranges compatible). Any other copy is caught by `used` below.
  const grpc = require('@grpc/grpc-js') as GrpcCredentialsModule;
  const original = grpc.credentials.createSsl;
  let used = false;
  grpc.credentials.createSsl = (rootCerts: unknown, privateKey: unknown, certChain: unknown, verify?: object) => {
    used = true;
    return original(rootCerts, privateKey, certChain, { ...verify, ...UNVERIFIED_TLS });
  };
  try {
    const client = build();
    if (!used) {
      client.close();
      throw new Error('insecure_skip_verify is not supported by this version of the etcd3 client library');
    }
    return client;
  } finally {
    grpc.credentials.createSsl = original;
  }
}

// ---------------------------------------------------------------------------
// Fault handling. etcd3 runs each request as global.execute(() => try the
// hosts in shuffled order, each through host(h).execute(call)). Our own small
// policies replace its cockatiel defaults (3 tries, no backoff; a host is shut
// out after 3 failures even when every host is down).

interface Policy {
  execute<T>(fn: (ctx: { signal: AbortSignal; attempt: number }) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T>;
}

const NEVER = new AbortController().signal;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const NO_POLICY: Policy = {
  execute: async (fn, signal) => fn({ signal: signal ?? NEVER, attempt: 0 }),
};

class RetryPolicy implements Policy {
  /** An overload is said once per connection: every request in flight meets it at once. */
  private overloadWarned = false;

  constructor(
    private readonly attempts: number,
    private readonly warn: (line: string) => void,
  ) {}

  async execute<T>(fn: (ctx: { signal: AbortSignal; attempt: number }) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
    let refusal: unknown;
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn({ signal: signal ?? NEVER, attempt });
      } catch (err) {
        if (isOverloaded(err)) refusal = err;
        if (attempt + 1 >= this.attempts || !isTransient(err) || signal?.aborted) {
          // A proposal that got past the refusal can still starve waiting for apply: that is the same overload.
          throw refusal !== undefined && isTimeout(err) ? refusal : err;
        }
        const pause = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt);
        if (isOverloaded(err) && !this.overloadWarned) {
          this.overloadWarned = true;
          this.warn(
            `etcd is overloaded (too many requests: its applied entries lag its committed ones); retrying in ${pause} ms, backing off up to ${BACKOFF_MAX_MS / 1000} s, ${this.attempts} tries per request`,
          );
        }
        await sleep(pause);
      }
    }
  }
}

/**
 * Per-member circuit breaker. A member whose connection failed is skipped
 * for a while, so a dead or frozen member costs one timeout, not one per
 * request; but when every member is failing, all are tried again, since
 * skipping them all would only fail faster (a leader election, a restart).
 */
class MemberHealth {
  private readonly skipUntil = new Map<string, number>();
  private readonly lastError = new Map<string, string>();

  constructor(
    private readonly hosts: string[],
    private readonly warn: (line: string) => void,
  ) {}

  private skipped(host: string, now: number): boolean {
    return (this.skipUntil.get(host) ?? 0) > now;
  }

  policyFor(host: string): Policy {
    return {
      execute: async (fn, signal) => {
        const now = Date.now();
        if (this.hosts.length > 1 && this.skipped(host, now) && !this.hosts.every((h) => this.skipped(h, now))) {
          throw new MemberSkipped(host, this.lastError.get(host) ?? 'unknown error');
        }
        try {
          const result = await fn({ signal: signal ?? NEVER, attempt: 0 });
          this.skipUntil.delete(host);
          return result;
        } catch (err) {
          // Errors etcd itself answered with (permission, compaction...) say nothing about the member's health.
          if (this.hosts.length > 1 && err instanceof Error && isMemberFailure(err)) {
            const wasHealthy = !this.skipUntil.has(host);
            this.skipUntil.set(host, Date.now() + SKIP_FAILED_MEMBER_MS);
            this.lastError.set(host, shortGrpcMessage(err.message));
            if (wasHealthy) {
              this.warn(`etcd member ${host} failed (${shortGrpcMessage(err.message)}); continuing with the other members`);
            }
          }
          throw err;
        }
      },
    };
  }
}
