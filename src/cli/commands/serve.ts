import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UsageError } from '../../errors';
import { readIdentityFile } from '../../pipeline/encryption';
import type { ServiceConfig } from '../../service/config';
import type { RunContext } from '../context';
import { isDebug } from '../debug';
import { printReport } from '../stdout';

export interface ServeCommandOptions {
  config?: string;
  check?: boolean;
}

/**
 * `serve --check`: every problem in the file on stderr (exit 1), or a
 * summary per job on stdout (exit 0). `serve`: runs the service until
 * SIGTERM/SIGINT.
 */
export async function runServe(opts: ServeCommandOptions, ctx: RunContext): Promise<void> {
  if (!opts.config) throw new UsageError(`serve${opts.check ? ' --check' : ''} needs --config FILE`, 'give the service configuration file, e.g. --config examples/serve.yaml');
  const config = await readConfig(opts.config, ctx);
  if (opts.check) {
    await checkIdentities(config);
    for (const w of config.settings.warnings) ctx.say(`warning: ${w}`);
    printReport(summary(config));
    return;
  }
  const { serve } = await import('../serve-process');
  await serve(config, { debug: isDebug() });
}

async function readConfig(file: string, ctx: RunContext): Promise<ServiceConfig> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read the service configuration ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'check the path given to --config');
  }
  const { loadServiceConfig, ServiceConfigError } = await loadService();
  try {
    return loadServiceConfig(text, file, { env: process.env, baseDir: dirname(resolve(file)) });
  } catch (err) {
    if (!(err instanceof ServiceConfigError)) throw err;
    for (const line of err.lines()) ctx.say(line);
    // A file that fails the check is a usage problem: exit 1, as the issue asks of --check.
    throw new UsageError(`${file} is not valid: ${err.problems.length} error${err.problems.length === 1 ? '' : 's'} (listed above)`, 'fix each listed line, then run serve --check again');
  }
}

/** Identity files are read by the service at start; --check reads them too, so a bad one shows before a deploy. */
async function checkIdentities(config: ServiceConfig): Promise<void> {
  for (const job of config.jobs) {
    if (!job.identityFile) continue;
    try {
      await readIdentityFile(job.identityFile);
    } catch (err) {
      throw new UsageError(`${config.source}: job "${job.name}": identity_file: ${(err as Error).message}`, 'give the identity file that age-keygen wrote for one of the job\'s recipients');
    }
  }
}

/** The one-file SHIELD build leaves yaml and croner out; that copy says so instead of crashing. */
async function loadService(): Promise<typeof import('../../service/config')> {
  try {
    return await import('../../service/config');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err;
    throw new UsageError(`serve needs the yaml and croner packages, which this copy lacks (${(err as Error).message.split('\n')[0]})`, 'use the npm-installed etcd-shield for serve; the one-file SHIELD plugin leaves them out');
  }
}

function summary(config: ServiceConfig, now = new Date()): string {
  const d = config.describe();
  const out = [
    `${d.source}: ok, ${d.jobs.length} job${d.jobs.length === 1 ? '' : 's'}`,
    `listen    ${d.listen}${config.listen.loopback ? ' (loopback)' : ''}`,
    `token     ${d.token === 'set' ? 'set (hidden)' : 'none (loopback only)'}`,
    `grace     ${d.shutdownGraceSeconds} s for running backups on SIGTERM`,
  ];
  if (d.ha) out.push(`ha        election on ${d.ha.election}, through job "${d.ha.job}"'s etcd, lease TTL ${d.ha.ttl} s`);
  for (const job of config.jobs) {
    const j = job.describe();
    const next = job.nextRun(now);
    const when = (expr: string, at: Date | undefined) => `${expr} (${j.timezone}), next ${at ? at.toISOString().replace(/\.\d+Z$/, 'Z') : 'never'}`;
    const rules = Object.entries(j.keep).filter(([, n]) => n !== undefined);
    out.push(
      '',
      `job "${j.name}"`,
      `  etcd      ${j.etcd.endpoints.join(', ')} (${j.etcd.tls ? 'TLS' : 'no TLS'}, auth ${j.etcd.auth}${j.etcd.username ? `, user ${j.etcd.username}` : ''})`,
      `  prefix    ${j.prefix === '' ? 'every key' : JSON.stringify(j.prefix)}`,
      ...(j.mode === 'snapshot' ? ['  mode      snapshot (etcd\'s own database snapshot, from the first healthy member)'] : []),
      `  store     ${j.to}${job.store.kind === 'dir' ? ` (directory ${job.store.path})` : ''}`,
      `  schedule  ${when(j.schedule, next)}`,
      ...(j.verify ? [`  verify    ${when(j.verify, job.nextVerify(now))}`] : []),
      `  compress  ${j.compress}`,
      `  encrypt   ${j.encryptTo.length ? `age, ${j.encryptTo.length} recipient${j.encryptTo.length === 1 ? '' : 's'}` : 'none'}`,
      ...(j.identityFile ? [`  identity  ${j.identityFile} (for verify)`] : []),
      ...(j.changes ? [`  changes   change log, flushed every ${j.changes.flushSeconds} s (by the leader)`] : []),
      `  keep      ${rules.length ? rules.map(([r, n]) => `${r} ${n}`).join(', ') : 'every backup (no keep rules)'}`,
    );
  }
  return out.join('\n');
}
