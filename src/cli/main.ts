import { Command, CommanderError, Option } from 'commander';
import { asShieldError, ExitCode } from '../errors';
import { DEFAULT_LIMITS } from '../restore/limits';
import { addShieldActions } from '../shield/actions';
import { TOOL_AUTHOR, TOOL_NAME, TOOL_VERSION } from '../version';
import { configFrom, positiveInt, RunContext, stderrContext } from './context';
import { isDebug } from './debug';
import { addFieldOptions } from './field-flags';
import { printReport } from './stdout';
import { abortOnSignals } from './signals';
import type { BackupCommandOptions } from './commands/backup';
import type { RestoreCommandOptions } from './commands/restore';
import type { ServeCommandOptions } from './commands/serve';
import type { VerifyCommandOptions } from './commands/verify';
import type { FollowCommandOptions } from './commands/follow';
import { durationFlag } from './duration';
import { addEncryptOptions, addIdentityOption, addKeepOptions, addStoreOptions, type KeepFlags, type StoreFlags } from './store-flags';

// Commands are loaded when run, so info, --help and --version skip loading the gRPC client.
const EXAMPLES = `
Examples:
  etcd-shield backup --endpoints http://127.0.0.1:2379 --out etcd.archive
  etcd-shield restore --endpoints http://127.0.0.1:2379 --in etcd.archive --overwrite --dry-run
  etcd-shield verify --in etcd.archive

With a store (a directory, or s3://bucket/path; each cluster and prefix under its own path):
  etcd-shield backup --endpoints http://127.0.0.1:2379 --to s3://backups/etcd/main --encrypt-to age1...
  etcd-shield list --from s3://backups/etcd/main
  etcd-shield verify --from s3://backups/etcd/main --all --identity key.txt
  etcd-shield prune --from s3://backups/etcd/main --keep-last 4 --keep-daily 7 --keep-weekly 4
  etcd-shield delete --from s3://backups/etcd/main 2026-12-02T03-00-00Z-r123456-9f3a
  etcd-shield restore --endpoints http://127.0.0.1:2379 --from s3://backups/etcd/main --identity key.txt
  etcd-shield follow --endpoints http://127.0.0.1:2379 --to s3://backups/etcd/main --flush 5s   (change log, until SIGTERM)
  etcd-shield restore --endpoints http://127.0.0.1:2379 --from s3://backups/etcd/main --to-time 2026-12-02T14:31:58Z --prefix /app/ --overwrite
  etcd-shield serve --config examples/serve.yaml     (serve --check validates the file first)
  etcd-shield validate -e '{"url":"https://10.0.0.11:2379","auth":"Role-Based Authentication",...}'

Under SHIELD (etcd-shield install-plugin DIR puts a one-file copy in the agent's plugin directory as "etcd"):
  etcd info | validate -e JSON | backup -e JSON > archive | restore -e JSON < archive

Exit codes: 0 ok, 1 usage, 2 unsupported action, 4 failure, 10 bad -e JSON,
12 required field missing, 13 field of the wrong type.`;

const SERVE_HELP = `
The service runs each job's backups on its cron schedule (seconds allowed, in its time zone), applies
its keep rules after each success, checks stored backups on its verify schedule, and serves:
  GET  /             status page            GET /metrics          Prometheus text
  GET  /healthz      the process lives      GET /readyz           config loaded, stores reachable
  GET  /api/jobs     jobs, runs, next runs  GET /api/jobs/NAME/backups
  POST /api/jobs/NAME/run   (Authorization: Bearer TOKEN)   GET /api/runs/ID
A job still running skips its next tick; a backup missed while the service was down runs at start.
SIGTERM or Ctrl-C: schedules stop, running backups get shutdown_grace (60 s) to finish, then are
aborted leaving no backup and no partial object; a second signal aborts them at once.
Logs: JSON lines on stderr, readable lines at a terminal. Full reference: docs/service.md.`;

export function buildProgram(run: (fn: (ctx: RunContext) => Promise<void>) => Promise<void>): Command {
  const program = new Command(TOOL_NAME)
    .description('Consistent, streaming backup and restore of etcd v3: a SHIELD target plugin and a command-line tool.')
    .version(`${TOOL_NAME} v${TOOL_VERSION} - ${TOOL_AUTHOR}`, '-v, --version', 'print the version')
    .option('-D, --debug', 'print debug details and stack traces on stderr (also DEBUG=true)')
    .helpOption('-h, --help', 'show help')
    .addHelpText('after', EXAMPLES)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    // Help and version go through the report writer, so `--help | head` ends with a message, not a stack trace.
    .configureOutput({ writeOut: (s) => printReport(s), outputError: (s, write) => write(s) });

  addShieldActions(program);

  addFieldOptions(
    program
      .command('validate')
      .description('check every field, then connect: endpoints, members, credentials, permissions on the prefix')
      .option('--offline', 'check the fields only; do not connect'),
  ).action(async (opts: { offline?: boolean }, cmd: Command) => run(async (ctx) => (await import('./commands/validate')).runValidate(cmd, ctx, Boolean(opts.offline))));

  addStoreOptions(addEncryptOptions(addFieldOptions(
    program
      .command('backup')
      .description('write a consistent archive of the keys under the prefix (stdout, --out FILE, or --to STORE)')
      .option('-o, --out <file>', 'write the archive to this file instead of standard output; it replaces the file only once complete and on disk, so a failed run keeps the old one')
      .option('--to <store>', 'store the backup (an archive, or with --mode snapshot etcd\'s snapshot), compressed (and encrypted with --encrypt-to), with a manifest, in a directory or s3://bucket/path')
      .option('--json', 'with --to: print the stored backup\'s manifest as JSON on stdout')
      .addOption(
        new Option('--format <format>', 'archive format: etcd-shield (checksummed, with leases), or legacy (the original Go plugin\'s)')
          .choices(['etcd-shield', 'legacy'])
          .default('etcd-shield'),
      )
      .option('--member <url>', 'with --mode snapshot: the member to take the snapshot from (default: the first healthy endpoint)')
      .addOption(new Option('--page-bytes <bytes>', 'byte budget per read request').argParser(positiveInt('page-bytes')).hideHelp()),
  ))).action(async (opts: BackupCommandOptions, cmd: Command) =>
    run(async (ctx) => (await import('./commands/backup')).runBackup(configFrom(cmd, ctx), opts, ctx)),
  );

  addStoreOptions(addIdentityOption(addFieldOptions(
    program
      .command('restore')
      .description('verify an archive completely, then write it to etcd (stdin, --in FILE, or --from STORE); either archive format or an etcd snapshot file, plain, compressed or encrypted')
      .option('-i, --in <file>', 'read the archive from this file instead of standard input')
      .option('--from <store>', 'restore the newest complete backup in this directory or s3://bucket/path')
      .option('--backup <name>', 'with --from: restore this backup (names as etcd-shield list shows them)')
      .option('--before <time>', 'with --from: restore the newest backup taken at or before this time (ISO 8601, e.g. 2026-12-02T14:31:58Z)')
      .addOption(new Option('--to-revision <rev>', 'restore the keyspace as it was at this revision: with --from, a full backup plus the change log up to it; with an etcd snapshot file, its history since its last compaction').argParser(positiveInt('to-revision')))
      .option('--to-time <time>', 'with --from: restore the keyspace as it was at this time (ISO 8601); prints the revision it resolved to')
      .option('--dry-run', 'report what would be added, updated and deleted, and change nothing')
      .addOption(new Option('--concurrency <n>', 'transactions in flight at once').argParser(positiveInt('concurrency')).default(DEFAULT_LIMITS.concurrency))
      .addOption(new Option('--batch-ops <n>', 'operations per transaction (etcd allows 128 by default)').argParser(positiveInt('batch-ops')).default(DEFAULT_LIMITS.maxOps))
      .addOption(new Option('--batch-bytes <n>', 'bytes per transaction (etcd allows 1.5 MiB by default)').argParser(positiveInt('batch-bytes')).default(DEFAULT_LIMITS.maxBytes)),
  ))).action(
    async (opts: Omit<RestoreCommandOptions, 'limits'> & { concurrency: number; batchOps: number; batchBytes: number }, cmd: Command) =>
      run(async (ctx) =>
        (await import('./commands/restore')).runRestore(
          configFrom(cmd, ctx),
          { ...opts, limits: { concurrency: opts.concurrency, maxOps: opts.batchOps, maxBytes: opts.batchBytes } },
          ctx,
        ),
      ),
  );

  addStoreOptions(
    addIdentityOption(
      program
        .command('verify')
        .description('check an archive, an etcd snapshot file, or stored backups end to end: structure, count, checksums; never touches etcd')
        .option('-i, --in <file>', 'read the archive from this file instead of standard input')
        .option('--from <store>', 'check the newest backup in this directory or s3://bucket/path (download, decrypt, decompress, verify)')
        .option('--backup <name>', 'with --from: check this backup')
        .option('--before <time>', 'with --from: check the newest backup taken at or before this time')
        .option('--all', 'with --from: check every complete backup; exit 0 only if all are intact')
        .option('--json', 'print the summary as JSON'),
    ),
  ).action(async (opts: VerifyCommandOptions) => run(async (ctx) => (await import('./commands/verify')).runVerify(opts, ctx)));

  addStoreOptions(addEncryptOptions(addFieldOptions(
    program
      .command('follow')
      .description('record every change under the prefix into a store as change segments, for restore --to-revision / --to-time; runs until SIGTERM')
      .requiredOption('--to <store>', 'the store that holds the backups (a directory or s3://bucket/path); a full backup is taken first if it has none')
      .addOption(new Option('--flush <duration>', 'store the open segment this often (e.g. 500ms, 5s): the most a crash loses').argParser(durationFlag('flush')).default(5000, '5s'))
      .addOption(new Option('--idle-flush <duration>', 'with no changes, record that the log is current this often').argParser(durationFlag('idle-flush')).default(60_000, '1m'))
      .addOption(new Option('--segment-bytes <n>', 'store a segment early once its events reach this size').argParser(positiveInt('segment-bytes')).hideHelp()),
  ))).action(async (opts: FollowCommandOptions, cmd: Command) =>
    run(async (ctx) => (await import('./commands/follow')).runFollow(configFrom(cmd, ctx), opts, ctx)),
  );

  addStoreOptions(
    program
      .command('list')
      .description('list the complete backups in a store, newest last, from their manifests (never reads archives)')
      .requiredOption('--from <store>', 'a directory or s3://bucket/path')
      .option('--json', 'print the backups, incomplete archives and unreadable manifests as JSON'),
  ).action(async (opts: StoreFlags & { from: string; json?: boolean }) => run(async (ctx) => (await import('./commands/list')).runList(opts.from, opts, ctx)));

  addStoreOptions(
    addKeepOptions(
      program
        .command('prune')
        .description('delete the backups no keep rule keeps (restic\'s rules, in UTC; the newest is always kept) and incomplete archives older than a day')
        .requiredOption('--from <store>', 'a directory or s3://bucket/path')
        .option('--dry-run', 'say what would be kept and deleted, and delete nothing')
        .option('--json', 'print the decisions as JSON'),
    ),
  ).action(async (opts: StoreFlags & KeepFlags & { from: string; dryRun?: boolean; json?: boolean }) =>
    run(async (ctx) => (await import('./commands/prune')).runPrune(opts.from, opts, ctx)),
  );

  addStoreOptions(
    program
      .command('delete')
      .description('delete the named backups from a store, each whole (manifest first, then its archive), complete or not; change segments are left to prune')
      .argument('<names...>', 'backup names, as `list` prints them')
      .requiredOption('--from <store>', 'a directory or s3://bucket/path')
      .option('--dry-run', 'say what would be deleted, and delete nothing')
      .option('--force', 'also when no complete backup would remain')
      .option('--json', 'print what was deleted as JSON'),
  ).action(async (names: string[], opts: StoreFlags & { from: string; dryRun?: boolean; force?: boolean; json?: boolean }) =>
    run(async (ctx) => (await import('./commands/delete')).runDelete(opts.from, names, opts, ctx)),
  );

  program
    .command('serve')
    .description('run scheduled backups as a service: schedules, retention, verify runs, HTTP API, metrics and a status page')
    .option('-c, --config <file>', 'the service configuration (YAML): listen, token, jobs (see examples/serve.yaml)')
    .option('--check', 'check the file (every job, field and secret source) and print a summary; exit 0 if valid, 1 if not')
    .addHelpText('after', SERVE_HELP)
    // The service handles its own signals: the first lets running backups finish, the second aborts them cleanly.
    .action(async (opts: ServeCommandOptions) => (await import('./commands/serve')).runServe(opts, stderrContext(new AbortController().signal)));

  return program;
}

/** Two lines, what happened and what to do, with the stacks only under --debug; returns the exit code. */
function report(thrown: unknown, debug: boolean): number {
  const err = asShieldError(thrown);
  process.stderr.write(`${TOOL_NAME}: ${err.message}\n  what to do: ${err.hint}\n`);
  if (debug) {
    for (let e: unknown = err; e instanceof Error; e = e.cause) process.stderr.write(`${e === err ? '' : 'caused by: '}${e.stack}\n`);
  }
  return err.exitCode;
}

export async function main(argv: string[]): Promise<number> {
  const debug = isDebug();
  // grpc-js names IP endpoints as TLS servers (DEP0123); the warning helps no operator.
  if (!debug) process.noDeprecation = true;
  // The AWS SDK warns on Node 20 about its releases after January 2027; ours pins one that supports it.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  let signal: AbortSignal | undefined;
  const run = async (fn: (ctx: RunContext) => Promise<void>) => {
    signal = abortOnSignals((name) => process.stderr.write(`\n${TOOL_NAME}: ${name} received, stopping safely (again to quit at once)\n`));
    await fn(stderrContext(signal));
  };
  const program = buildProgram(run);
  if (argv.length <= 2) {
    program.outputHelp();
    return ExitCode.usage;
  }
  try {
    await program.parseAsync(argv);
    return ExitCode.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return ExitCode.ok;
      return ExitCode.usage;
    }
    return report(err, debug);
  }
}
