// Where a fault test places its fault, and how it shows afterwards that the
// fault hit the run: by state that etcd or the CLI makes observable, never by time.
import { strict as assert } from 'node:assert';
import { get } from 'node:http';
import type { Etcd3 } from 'etcd3';
import { describeRun, type RunningCli } from './cli';

/**
 * How many calls of a gRPC method (Range, Txn...) an etcd member has answered
 * with `code` since it started, from its own /metrics page (plain http only).
 */
export async function callsAnswered(clientUrl: string, method: string, code = 'OK'): Promise<number> {
  return metricTotal(clientUrl, 'grpc_server_handled_total', [`grpc_code="${code}"`, `grpc_method="${method}"`]);
}

/** The sum of a metric's lines whose labels include all of `labels`, from an etcd member's /metrics page. */
export async function metricTotal(clientUrl: string, metric: string, labels: string[]): Promise<number> {
  const page = await new Promise<string>((resolve, reject) => {
    get(`${clientUrl}/metrics`, { agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (s: string) => (text += s));
      res.on('end', () => resolve(text));
    }).once('error', reject);
  });
  let total = 0;
  for (const line of page.split('\n')) {
    if (line.startsWith(`${metric}{`) && labels.every((l) => line.includes(l))) {
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return total;
}

/**
 * Starts a restore and SIGSTOPs it as soon as its first key under `prefix`
 * is in etcd, then checks that at least `left` keys of `total` were still to
 * be written (transactions in flight may still land): a fault placed now
 * falls mid-write. The caller sends SIGCONT.
 */
export async function restoreStoppedAtFirstKey(client: Etcd3, prefix: string, total: number, left: number, start: () => RunningCli): Promise<RunningCli> {
  const watcher = await client.watch().prefix(prefix).create();
  try {
    let run!: RunningCli;
    const writing = new Promise<void>((resolve) =>
      watcher.once('put', () => {
        run.child.kill('SIGSTOP');
        resolve();
      }),
    );
    run = start();
    const first = await Promise.race([writing.then(() => 'writing'), run.exit.then(() => 'exited')]);
    if (first === 'exited') assert.fail(`the restore ended before writing\n${describeRun(await run.exit)}`);
    const written = await client.getAll().prefix(prefix).count();
    if (written + left > total) {
      run.child.kill('SIGKILL');
      assert.fail(`the restore had written ${written} of ${total} keys when it was stopped: too few left for the fault to fall mid-write`);
    }
    return run;
  } finally {
    await watcher.cancel();
  }
}
