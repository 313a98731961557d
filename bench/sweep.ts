// Parameter sweeps behind docs/performance.md: page size for reads, and
// concurrency and batch size for restore. Not part of `npm run bench`.
//
//   node dist/bench/sweep.js [--keys 100000] [--runs 2] [--shield PATH] [--only read,backup,restore]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startEtcd } from '../test/harness';
import { load, client } from './loader';
import { benchEnv, measure, type RunSpec } from './measure';

const ROOT = path.resolve(__dirname, '..', '..');
const TMP = path.join(ROOT, 'bench', 'results', 'tmp');
const MB = 1024 * 1024;
const QUOTA = `--quota-backend-bytes=${8 * 1024 * MB}`;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

const keys = Number(arg('keys', '100000'));
const runs = Number(arg('runs', '2'));
const shieldBin = path.resolve(arg('shield', path.join(ROOT, 'bin', 'etcd-shield')));
const only = arg('only', 'read,backup,restore').split(',');
const env = benchEnv();
// etcd-shield runs as its executable, so the node flags on its shebang line apply.
const node = (args: string[]): RunSpec =>
  args[0] === shieldBin ? { cmd: shieldBin, args: args.slice(1), env } : { cmd: process.execPath, args, env };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function row(label: string, spec: () => Promise<RunSpec>, watch: () => number[], after?: () => Promise<void>): Promise<void> {
  const wall: number[] = [];
  const rss: number[] = [];
  const cpu: number[] = [];
  const srv: number[] = [];
  for (let r = 0; r < runs; r++) {
    const m = await measure({ ...(await spec()), watch: watch() });
    wall.push(m.wallMs / 1000);
    rss.push(m.rss / MB);
    cpu.push(m.cpuS);
    srv.push(m.serverCpuS);
    await after?.();
  }
  process.stdout.write(
    `| ${label} | ${median(wall).toFixed(2)} | ${median(rss).toFixed(0)} | ${median(cpu).toFixed(2)} | ${median(srv).toFixed(2)} |\n`,
  );
}

async function main(): Promise<void> {
  fs.mkdirSync(TMP, { recursive: true });
  const src = await startEtcd({ extraArgs: [QUOTA] });
  const archive = path.join(TMP, `sweep-${keys}.archive`);
  try {
    const etcd = client(src.url);
    await load(etcd, { keys, seed: 1 });
    etcd.close();
    const srcPid = () => [src.nodes[0]!.proc.pid!];
    process.stdout.write(`${keys} keys, medians of ${runs}; etcd-shield ${shieldBin}\n`);
    process.stdout.write('| variant | wall s | peak RSS MB | CPU s | etcd CPU s |\n|---|---:|---:|---:|---:|\n');
    if (only.includes('read')) {
      for (const limit of [500, 1000, 2000, 5000, 10000, 20000]) {
        await row(`etcd3 paged read, limit ${limit}`, async () => node([path.join(__dirname, 'reader.js'), '--endpoints', src.url, '--limit', String(limit)]), srcPid);
      }
    }
    if (only.includes('backup')) {
      for (const pageBytes of [512 * 1024, MB, 2 * MB, 4 * MB, 8 * MB, 16 * MB]) {
        await row(
          `backup --page-bytes ${pageBytes / 1024} KiB`,
          async () => node([shieldBin, 'backup', '--endpoints', src.url, '--out', archive, '--page-bytes', String(pageBytes)]),
          srcPid,
        );
      }
    } else {
      const m = await measure(node([shieldBin, 'backup', '--endpoints', src.url, '--out', archive]));
      if (m.wallMs <= 0) throw new Error('backup failed');
    }
    if (only.includes('restore')) {
      let dst: Awaited<ReturnType<typeof startEtcd>> | undefined;
      const fresh = async () => {
        await dst?.stop();
        dst = await startEtcd({ extraArgs: [QUOTA] });
      };
      const variants: [string, string[]][] = [
        ['--concurrency 8 --batch-ops 128 (default)', []],
        ['--concurrency 4', ['--concurrency', '4']],
        ['--concurrency 16', ['--concurrency', '16']],
        ['--concurrency 32', ['--concurrency', '32']],
        ['--batch-ops 64', ['--batch-ops', '64']],
        ['without --overwrite', ['--no-overwrite-flag']],
      ];
      for (const [label, extra] of variants) {
        const overwrite = extra.includes('--no-overwrite-flag') ? [] : ['--overwrite'];
        const flags = extra.filter((f) => f !== '--no-overwrite-flag');
        await row(
          `restore ${label}`,
          async () => {
            await fresh();
            return node([shieldBin, 'restore', '--endpoints', dst!.url, '--in', archive, ...overwrite, ...flags]);
          },
          () => [dst!.nodes[0]!.proc.pid!],
        );
      }
      for (const [ops, inFlight] of [
        [128, 8],
        [128, 16],
        [64, 8],
      ] as const) {
        await row(
          `bare loader, ${ops} ops × ${inFlight} in flight`,
          async () => {
            await fresh();
            return node([path.join(__dirname, 'loader.js'), '--endpoints', dst!.url, '--keys', String(keys), '--ops', String(ops), '--in-flight', String(inFlight)]);
          },
          () => [dst!.nodes[0]!.proc.pid!],
        );
      }
      await dst?.stop();
    }
  } finally {
    await src.stop();
    fs.rmSync(archive, { force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`sweep: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
