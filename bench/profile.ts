// Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time by area
// (gRPC, protobuf, etcd3, etcd-shield, node crypto/streams, GC, idle) and the
// top functions by self and by total time.
//
//   node dist/bench/profile.js FILE.cpuprofile [--top 20]

import * as fs from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface Row {
  name: string;
  ms: number;
  pct: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  areas: Row[];
  selfTop: Row[];
  totalTop: Row[];
}

/** Which part of the stack a frame belongs to. */
export function area(cf: CallFrame): string {
  const { url, functionName: fn } = cf;
  if (fn === '(garbage collector)') return 'GC';
  if (fn === '(idle)') return 'idle (waiting for etcd / I/O)';
  if (fn === '(program)') return 'V8/native, unattributed';
  if (fn === '(root)') return 'root';
  if (url.includes('/node_modules/@grpc/')) return 'grpc-js (HTTP/2 framing, calls)';
  if (url.includes('/node_modules/protobufjs/') || url.includes('/node_modules/@protobufjs/') || url.includes('/node_modules/long/'))
    return 'protobufjs (decode/encode)';
  if (url.includes('/node_modules/etcd3/')) return 'etcd3 client';
  if (url.includes('/node_modules/')) return `other deps (${/node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1]})`;
  if (url.includes('/dist/src/')) return 'etcd-shield src';
  if (url.includes('/dist/bench/')) return 'bench script';
  if (url.startsWith('node:internal/crypto')) return 'node crypto (sha256)';
  if (/^node:(internal\/)?(streams?|fs)/.test(url)) return 'node streams/fs';
  if (/^node:(internal\/)?(http2|net|stream_base_commons|tls)/.test(url)) return 'node http2/net';
  if (/^node:(internal\/)?(buffer|util)/.test(url)) return 'node buffer';
  if (url.startsWith('node:internal/modules') || url.startsWith('node:internal/bootstrap')) return 'node module loading';
  if (url.startsWith('node:')) return 'node other';
  // protobufjs compiles each message's codec with new Function(): no url, a Type$method name.
  if (url === '' && /^[A-Z]\w*(\$\w+)?$/.test(fn)) return 'protobufjs (decode/encode)';
  if (url === '') return 'native builtins (fs, module stat, etc.)';
  return 'other';
}

function label(cf: CallFrame): string {
  const url = cf.url
    .replace(/^.*\/node_modules\//, '')
    .replace(/^.*\/dist\//, '')
    .replace(/^file:\/\//, '');
  return `${cf.functionName || '(anonymous)'} ${url ? `${url}:${cf.lineNumber + 1}` : ''}`.trim();
}

export function summarise(file: string, top = 20): ProfileSummary {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of p.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  // Sample i lasts until sample i+1 (the last one until endTime).
  const dur: number[] = [];
  let t = p.startTime;
  const stamps = p.timeDeltas.map((d) => (t += d));
  for (let i = 0; i < p.samples.length; i++) dur.push(((i + 1 < stamps.length ? stamps[i + 1]! : p.endTime) - stamps[i]!) / 1000);

  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const areas = new Map<string, number>();
  let all = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const ms = Math.max(0, dur[i]!);
    all += ms;
    const node = byId.get(p.samples[i]!)!;
    const key = label(node.callFrame);
    self.set(key, (self.get(key) ?? 0) + ms);
    const a = area(node.callFrame);
    areas.set(a, (areas.get(a) ?? 0) + ms);
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const k = label(byId.get(id)!.callFrame);
      if (seen.has(k)) continue;
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + ms);
    }
  }
  const rows = (m: Map<string, number>, n: number, skip: (k: string) => boolean = () => false): Row[] =>
    [...m.entries()]
      .filter(([k]) => !skip(k))
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, ms]) => ({ name, ms: Math.round(ms), pct: Math.round((1000 * ms) / all) / 10 }));
  return {
    file,
    totalMs: Math.round(all),
    areas: rows(areas, 14),
    selfTop: rows(self, top),
    totalTop: rows(total, top, (k) => /^\((root|program|idle|garbage collector)\)/.test(k)),
  };
}

export function formatSummary(s: ProfileSummary): string {
  const table = (title: string, rows: Row[]) =>
    [`${title}`, ...rows.map((r) => `  ${String(r.ms).padStart(6)} ms ${r.pct.toFixed(1).padStart(5)}%  ${r.name}`)].join('\n');
  return [
    `profile ${s.file}: ${s.totalMs} ms sampled`,
    table('self time by area:', s.areas),
    table('top functions by self time:', s.selfTop),
    table('top functions by total time (self + callees):', s.totalTop),
  ].join('\n');
}

if (require.main === module) {
  const files = process.argv.slice(2).filter((a) => a.endsWith('.cpuprofile'));
  const i = process.argv.indexOf('--top');
  const top = i >= 0 ? Number(process.argv[i + 1]) : 20;
  if (!files.length) {
    process.stderr.write('usage: node dist/bench/profile.js FILE.cpuprofile... [--top N]\n');
    process.exit(1);
  }
  for (const f of files) process.stdout.write(`${formatSummary(summarise(f, top))}\n\n`);
}
