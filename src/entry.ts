// The executable's body: bin/etcd-shield runs it from dist/, and scripts/bundle.js
// builds the self-contained dist/etcd-shield.js from it.
import { printReport } from './cli/stdout';
import { pluginInfo } from './shield/info';

function run(argv: string[]): Promise<number> {
  // SHIELD's agent runs `info` on every plugin it lists: answer it without
  // loading the command-line parser or the gRPC client (docs/performance.md, "Start-up").
  if (argv.length === 3 && argv[2] === 'info') {
    printReport(JSON.stringify(pluginInfo(), null, 2));
    return Promise.resolve(0);
  }
  return import('./cli/main').then((cli) => cli.main(argv));
}

void run(process.argv).then((code) => {
  process.exitCode = code;
  // A lingering gRPC handle must not keep a finished run alive.
  setTimeout(() => process.exit(code), 2000).unref();
});
