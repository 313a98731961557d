import type { Command } from 'commander';
import { UnsupportedActionError } from '../errors';
import { printReport } from '../cli/stdout';
import { pluginInfo } from './info';

/** SHIELD's own verbs: `info`, installing into an agent's plugin directory, and the store-plugin actions a target plugin refuses (exit 2). */
export function addShieldActions(program: Command): void {
  program
    .command('info')
    .description('print the SHIELD plugin metadata (name, version, fields) as JSON')
    .action(() => {
      printReport(JSON.stringify(pluginInfo(), null, 2));
    });

  program
    .command('install-plugin')
    .description('install etcd-shield as a SHIELD plugin: DIR/NAME, a regular executable copy of the one-file build')
    .argument('<dir>', "the SHIELD agent's plugin directory")
    .option('--name <name>', 'the file name SHIELD calls the plugin by', 'etcd')
    .option('--force', 'replace a different file (or a symbolic link) of that name')
    .action(async (dir: string, opts: { name: string; force?: boolean }) => (await import('./install-plugin')).runInstallPlugin(dir, opts));

  for (const verb of ['store', 'retrieve', 'purge']) {
    program
      .command(verb, { hidden: true })
      .allowUnknownOption()
      .allowExcessArguments()
      .action(() => {
        throw new UnsupportedActionError(`"${verb}" is a store-plugin action; etcd-shield is a target plugin`);
      });
  }
}
