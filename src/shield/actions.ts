import type { Command } from 'commander';
import { UnsupportedActionError } from '../errors';
import { printReport } from '../cli/stdout';
import { pluginInfo } from './info';

/** SHIELD's own verbs: `info`, and the store-plugin actions a target plugin refuses (exit 2). */
export function addShieldActions(program: Command): void {
  program
    .command('info')
    .description('print the SHIELD plugin metadata (name, version, fields) as JSON')
    .action(() => {
      printReport(JSON.stringify(pluginInfo(), null, 2));
    });

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
