// Preloaded into a timed backup by bench/startup.ts (NODE_OPTIONS=--require):
// notes when the first Range request leaves, so start-up is measured without
// any timing code in etcd-shield itself.
import { writeFileSync } from 'node:fs';

// The module object grpc-js uses: a namespace import would be a copy.
const http2 = require('node:http2') as typeof import('node:http2');
const out = process.env.STARTUP_BENCH_FIRST_RANGE;
const connect = http2.connect;
let noted = false;

if (out) {
  (http2 as { connect: typeof connect }).connect = function (this: unknown, ...args: unknown[]) {
    const session = (connect as (...a: unknown[]) => import('node:http2').ClientHttp2Session).apply(this, args);
    const request = session.request;
    session.request = function (this: unknown, headers?: import('node:http2').OutgoingHttpHeaders, ...rest: unknown[]) {
      if (!noted && headers?.[':path'] === '/etcdserverpb.KV/Range') {
        noted = true;
        writeFileSync(out, JSON.stringify({ epochMs: performance.timeOrigin + performance.now(), sinceNodeStartMs: performance.now() }));
      }
      return (request as (...a: unknown[]) => import('node:http2').ClientHttp2Stream).call(this, headers, ...rest);
    } as typeof request;
    return session;
  } as typeof connect;
}
