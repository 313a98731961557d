import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import type { Logger } from 'pino';
import { ConfigError, NotFoundError } from '../../errors';
import type { Listen } from '../config';
import type { ServiceControl } from '../types';
import { registerApiRoutes } from './api-routes';
import { errorBody, httpError, sendError } from './errors';
import { createMetrics } from './metrics';
import { registerPageRoutes } from './page-routes';
import { readiness } from './readiness';

export interface HttpServerOptions {
  listen: Listen;
  /** The API token; without one, runs may be started from loopback only. */
  token?: string;
  logger: Logger;
}

export interface HttpServer {
  /** e.g. http://127.0.0.1:9469, with the real port when listen.port is 0. */
  url: string;
  close(): Promise<void>;
}

/** The service's HTTP face: health, readiness, metrics, the JSON API and the status page. */
export async function startHttpServer(control: ServiceControl, opts: HttpServerOptions): Promise<HttpServer> {
  const { listen, token, logger } = opts;
  // fastify's own logger would log request headers, and with them the token; we log one line per request ourselves.
  const app = Fastify({ logger: false, return503OnClosing: true, bodyLimit: 64 * 1024 });
  // No route reads a body: any body (an empty JSON one included) is read and dropped rather than refused.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, _body, done) => done(null, undefined));
  const metrics = createMetrics(control);

  app.addHook('onResponse', async (req, reply) => {
    logger.debug({ event: 'http', method: req.method, path: req.url.split('?')[0], status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'http request');
  });
  app.setErrorHandler(async (err, req, reply) => {
    const e = httpError(err);
    const fields = { event: 'http', method: req.method, path: req.url.split('?')[0], status: e.httpStatus, error: errorBody(e).error };
    if (e.httpStatus >= 500) logger.warn(fields, 'http request failed');
    else logger.debug(fields, 'http request refused');
    return sendError(reply, e);
  });
  app.setNotFoundHandler(async (req, reply) =>
    sendError(reply, new NotFoundError(`no route ${req.method} ${req.url.split('?')[0]}`, 'the service answers /, /healthz, /readyz, /metrics and /api/jobs (docs/service.md, "HTTP API")')),
  );
  app.addHook('onSend', async (req, reply) => {
    if (req.url.startsWith('/api/')) reply.header('cache-control', 'no-store');
  });

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_req, reply) => {
    const r = await readiness(control);
    return reply.code(r.ready ? 200 : 503).send({ status: r.ready ? 'ready' : r.stopping ? 'stopping' : 'not ready', stopping: r.stopping, checks: r.checks });
  });
  app.get('/metrics', async (_req, reply) => reply.header('content-type', metrics.contentType).send(await metrics.metrics()));
  registerApiRoutes(app, control, token);
  registerPageRoutes(app);

  try {
    await app.listen({ host: listen.host, port: listen.port });
  } catch (err) {
    await app.close();
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new ConfigError(`cannot listen on ${listen.host}:${listen.port} (listen): ${code}`, code === 'EADDRINUSE' ? 'another process holds that port: stop it or change listen' : 'check listen: the address must belong to this host, and ports below 1024 need privileges');
  }
  const port = (app.server.address() as AddressInfo).port;
  const url = `http://${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${port}`;
  logger.info({ event: 'http', url }, `HTTP API, metrics and status page on ${url}`);
  return { url, close: () => app.close() };
}
