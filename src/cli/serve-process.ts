import type { ServiceConfig } from '../service/config';
import { createLogger, type Logger } from '../service/log';
import { electedRole } from '../service/leadership';
import { SoloRole, type Role } from '../service/role';
import { startHttpServer } from '../service/http/server';
import { Service } from '../service/service';
import type { S3Settings } from '../store/open';
import { shieldBool } from '../config/shield-bool';

/**
 * The service as a process: logs on stderr, S3 settings from the
 * environment, and the signals. The first SIGTERM/SIGINT stops the
 * schedules and gives running backups the grace period; the second aborts
 * them at once (cleanly: uploads are aborted, nothing half-made is left);
 * a third quits without waiting.
 */
export async function serve(config: ServiceConfig, opts: { debug: boolean }): Promise<void> {
  const logger = createLogger({ pretty: process.stderr.isTTY === true, debug: opts.debug });
  for (const w of config.settings.warnings) logger.warn({ event: 'config' }, w);
  // role: with `ha`, etcd's election decides which instance runs the schedules.
  const role: Role = config.ha ? electedRole(config.ha, config.jobs, logger) : new SoloRole();
  const service = await Service.start(config, { logger, role, s3: s3FromEnv(process.env) });
  const stopped = onSignals(logger, config.settings.shutdownGraceSeconds * 1000, service);
  // Listening before "started", so whoever waits for that line can use the API; it answers (readyz: 503) through the grace period.
  const http = await startHttpServer(service, { listen: config.listen, token: config.token, logger }).catch(async (err: unknown) => {
    await service.shutdown(0);
    throw err;
  });
  logger.info({ event: 'started', jobs: config.jobs.map((j) => j.name), pid: process.pid }, `etcd-shield serve: ${config.jobs.length} job(s) from ${config.source}`);
  await stopped;
  await http.close();
  logger.info({ event: 'stopped' }, 'etcd-shield serve stopped');
}

function onSignals(logger: Logger, graceMs: number, service: Service): Promise<void> {
  return new Promise((resolve) => {
    let received = 0;
    const handler = (signal: NodeJS.Signals) => {
      received++;
      if (received === 1) {
        logger.info({ event: 'signal', signal }, `${signal}: stopping; running backups get ${graceMs / 1000} s to finish (send it again to abort them now)`);
        service.shutdown(graceMs).then(resolve, (err: Error) => {
          logger.error({ event: 'shutdown', error: err.message }, 'shutdown failed');
          resolve();
        });
      } else if (received === 2) {
        logger.warn({ event: 'signal', signal }, `${signal} again: aborting running backups now (no backup and no partial object is left)`);
        service.abortRuns();
      } else {
        logger.warn({ event: 'signal', signal }, `${signal} a third time: quitting without waiting`);
        process.exit(signal === 'SIGINT' ? 130 : 143);
      }
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
  });
}

/** The same variables as the CLI's store flags read; credentials and region stay with the AWS SDK's chain. */
function s3FromEnv(env: NodeJS.ProcessEnv): S3Settings {
  const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  const pathStyle = env.ETCD_SHIELD_S3_PATH_STYLE ? shieldBool(env.ETCD_SHIELD_S3_PATH_STYLE) : undefined;
  return { endpoint, forcePathStyle: pathStyle ?? undefined, caFile: env.ETCD_SHIELD_S3_CA || undefined };
}
