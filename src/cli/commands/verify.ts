import { verify } from '../../api/verify';
import { humanBytes } from '../../util/format';
import type { RunContext } from '../context';
import { printReport } from '../stdout';

/** Reads an archive end to end without etcd and prints what it holds. */
export async function runVerify(opts: { in?: string; json?: boolean }, ctx: RunContext): Promise<void> {
  const s = await verify(opts.in ? { file: opts.in } : process.stdin, { signal: ctx.signal, inputName: 'standard input' });
  if (opts.json) {
    printReport(JSON.stringify(s, null, 2));
    return;
  }
  const legacy = s.format === 'legacy';
  const rows: [string, string][] = [
    ['archive', `intact (${legacy ? 'legacy format: every line parses; it has no checksum' : 'structure, count and sha256 verified'})`],
    ['format', s.format],
    ['revision', s.revision ?? 'not recorded (legacy)'],
    ['keys', String(s.keys)],
    ['leases', legacy ? 'not recorded (legacy)' : String(s.leases)],
    ['bytes', `${s.bytes} (${humanBytes(s.bytes)})`],
    ['prefix', s.prefix !== null ? JSON.stringify(s.prefix) : 'not recorded (legacy)'],
    ['cluster', s.clusterId ?? 'not recorded (legacy)'],
    ['taken', s.createdAt ?? 'not recorded (legacy)'],
  ];
  printReport(rows.map(([k, v]) => `${k.padEnd(9)} ${v}`).join('\n'));
}
