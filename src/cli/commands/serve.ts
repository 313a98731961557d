import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UsageError } from '../../errors';
import type { ServiceConfig } from '../../service/config';
import type { RunContext } from '../context';
import { printReport } from '../stdout';

export interface ServeCommandOptions {
  config?: string;
  check?: boolean;
}

/** `serve --check`: every problem in the file on stderr (exit 1), or a summary per job on stdout (exit 0). */
export async function runServe(opts: ServeCommandOptions, ctx: RunContext): Promise<void> {
  if (!opts.check) {
    throw new UsageError('the service itself is not built yet', 'serve --check validates the file; running the service comes in a later release');
  }
  if (!opts.config) throw new UsageError('serve --check needs --config FILE', 'give the service configuration file, e.g. --config examples/serve.yaml');
  let text: string;
  try {
    text = readFileSync(opts.config, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read the service configuration ${opts.config}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'check the path given to --config');
  }
  const { loadServiceConfig, ServiceConfigError } = await loadService();
  let config: ServiceConfig;
  try {
    config = loadServiceConfig(text, opts.config, { env: process.env, baseDir: dirname(resolve(opts.config)) });
  } catch (err) {
    if (!(err instanceof ServiceConfigError)) throw err;
    for (const line of err.lines()) ctx.say(line);
    // A file that fails the check is a usage problem: exit 1, as the issue asks of --check.
    throw new UsageError(`${opts.config} is not valid: ${err.problems.length} error${err.problems.length === 1 ? '' : 's'} (listed above)`, 'fix each listed line, then run serve --check again');
  }
  printReport(summary(config));
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
      `  store     ${j.to}${job.store.kind === 'dir' ? ` (directory ${job.store.path})` : ''}`,
      `  schedule  ${when(j.schedule, next)}`,
      ...(j.verify ? [`  verify    ${when(j.verify, job.nextVerify(now))}`] : []),
      `  compress  ${j.compress}`,
      `  encrypt   ${j.encryptTo.length ? `age, ${j.encryptTo.length} recipient${j.encryptTo.length === 1 ? '' : 's'}` : 'none'}`,
      `  keep      ${rules.length ? rules.map(([r, n]) => `${r} ${n}`).join(', ') : 'every backup (no keep rules)'}`,
    );
  }
  return out.join('\n');
}
