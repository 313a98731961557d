import { Command, CommanderError, Option } from 'commander';
import { shieldBool } from '../config/shield-bool';
import { asShieldError, ExitCode } from '../errors';
import { DEFAULT_LIMITS } from '../restore/limits';
import { addShieldActions } from '../shield/actions';
import { TOOL_AUTHOR, TOOL_NAME, TOOL_VERSION } from '../version';
import { configFrom, positiveInt, RunContext, stderrContext } from './context';
import { addFieldOptions } from './field-flags';
import { abortOnSignals } from './signals';

// Commands are loaded when run, so info, --help and --version skip loading the gRPC client.
const EXAMPLES = `
Examples:
  etcd-shield backup --endpoints http://127.0.0.1:2379 --out etcd.archive
  etcd-shield restore --endpoints http://127.0.0.1:2379 --in etcd.archive --overwrite --dry-run
  etcd-shield verify --in etcd.archive
  etcd-shield validate -e '{"url":"https://10.0.0.11:2379","auth":"Role-Based Authentication",...}'

Under SHIELD (etcd-shield install-plugin DIR puts a one-file copy in the agent's plugin directory as "etcd"):
  etcd info | validate -e JSON | backup -e JSON > archive | restore -e JSON < archive

Exit codes: 0 ok, 1 usage, 2 unsupported action, 4 failure, 10 bad -e JSON,
12 required field missing, 13 field of the wrong type.`;

function isDebug(): boolean {
  return process.argv.includes('-D') || process.argv.includes('--debug') || shieldBool(process.env.DEBUG ?? '') === true;
}

export function buildProgram(run: (fn: (ctx: RunContext) => Promise<void>) => Promise<void>): Command {
  const program = new Command(TOOL_NAME)
    .description('Consistent, streaming backup and restore of etcd v3: a SHIELD target plugin and a command-line tool.')
    .version(`${TOOL_NAME} v${TOOL_VERSION} - ${TOOL_AUTHOR}`, '-v, --version', 'print the version')
    .option('-D, --debug', 'print debug details and stack traces on stderr (also DEBUG=true)')
    .helpOption('-h, --help', 'show help')
    .addHelpText('after', EXAMPLES)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureOutput({ outputError: (s, write) => write(s) });

  addShieldActions(program);

  addFieldOptions(
    program
      .command('validate')
      .description('check every field, then connect: endpoints, members, credentials, permissions on the prefix')
      .option('--offline', 'check the fields only; do not connect'),
  ).action(async (opts: { offline?: boolean }, cmd: Command) => run(async (ctx) => (await import('./commands/validate')).runValidate(cmd, ctx, Boolean(opts.offline))));

  addFieldOptions(
    program
      .command('backup')
      .description('write a consistent archive of the keys under the prefix (stdout, or --out FILE)')
      .option('-o, --out <file>', 'write the archive to this file instead of standard output; it replaces the file only once complete and on disk, so a failed run keeps the old one')
      .addOption(
        new Option('--format <format>', 'archive format: etcd-shield (checksummed, with leases), or legacy (the original Go plugin\'s)')
          .choices(['etcd-shield', 'legacy'])
          .default('etcd-shield'),
      )
      .addOption(new Option('--page-bytes <bytes>', 'byte budget per read request').argParser(positiveInt('page-bytes')).hideHelp()),
  ).action(async (opts: { out?: string; format: 'etcd-shield' | 'legacy'; pageBytes?: number }, cmd: Command) =>
    run(async (ctx) => (await import('./commands/backup')).runBackup(configFrom(cmd, ctx), opts, ctx)),
  );

  addFieldOptions(
    program
      .command('restore')
      .description('verify an archive completely, then write it to etcd (stdin, or --in FILE); either format')
      .option('-i, --in <file>', 'read the archive from this file instead of standard input')
      .option('--dry-run', 'report what would be added, updated and deleted, and change nothing')
      .addOption(new Option('--concurrency <n>', 'transactions in flight at once').argParser(positiveInt('concurrency')).default(DEFAULT_LIMITS.concurrency))
      .addOption(new Option('--batch-ops <n>', 'operations per transaction (etcd allows 128 by default)').argParser(positiveInt('batch-ops')).default(DEFAULT_LIMITS.maxOps))
      .addOption(new Option('--batch-bytes <n>', 'bytes per transaction (etcd allows 1.5 MiB by default)').argParser(positiveInt('batch-bytes')).default(DEFAULT_LIMITS.maxBytes)),
  ).action(
    async (opts: { in?: string; dryRun?: boolean; concurrency: number; batchOps: number; batchBytes: number }, cmd: Command) =>
      run(async (ctx) =>
        (await import('./commands/restore')).runRestore(
          configFrom(cmd, ctx),
          { in: opts.in, dryRun: opts.dryRun, limits: { concurrency: opts.concurrency, maxOps: opts.batchOps, maxBytes: opts.batchBytes } },
          ctx,
        ),
      ),
  );

  program
    .command('verify')
    .description('check an archive end to end (structure, count, checksum) without touching etcd')
    .option('-i, --in <file>', 'read the archive from this file instead of standard input')
    .option('--json', 'print the summary as JSON')
    .action(async (opts: { in?: string; json?: boolean }) => run(async (ctx) => (await import('./commands/verify')).runVerify(opts, ctx)));

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
