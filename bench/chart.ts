// A hand-written SVG: throughput and peak RSS against keyspace size, one
// line per tool, from the per-size medians that bench.ts keeps.

export interface ToolPoint {
  keysPerS: number;
  mbPerS: number;
  rssMb: number;
  wallS: number;
}

export interface SizePoint {
  keys: number;
  dataBytes: number;
  date: string;
  runs: number;
  tools: Record<string, ToolPoint>;
}

const COLORS: Record<string, string> = {
  'etcd-shield backup': '#d62728',
  'etcd-shield backup | pv': '#ff9896',
  'etcd-shield restore': '#1f77b4',
  'etcdctl snapshot save': '#2ca02c',
  'etcdctl get -w json': '#9467bd',
  'etcd3 paged read': '#8c564b',
  'bare loader': '#17becf',
};
const FALLBACK = ['#7f7f7f', '#bcbd22', '#e377c2'];

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmtKeys = (n: number) => (n >= 1e6 ? `${n / 1e6}M` : n >= 1e3 ? `${n / 1e3}k` : String(n));
const fmtNum = (n: number) => (n === 0 || n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));

interface Panel {
  title: string;
  unit: string;
  log: boolean;
  value: (t: ToolPoint) => number;
  /** Horizontal reference line (a target). */
  line?: { at: number; label: string };
}

export function renderChart(points: SizePoint[], machine: string): string {
  const sizes = [...points].sort((a, b) => a.keys - b.keys);
  const tools = [...new Set(sizes.flatMap((s) => Object.keys(s.tools)))];
  const color = (t: string, i: number) => COLORS[t] ?? FALLBACK[i % FALLBACK.length]!;
  const W = 1000;
  const H = 470;
  const panelW = 380;
  const panelH = 300;
  const top = 60;
  const lefts = [70, 560];
  const panels: Panel[] = [
    { title: 'Throughput (MB/s of keys + values, higher is better)', unit: 'MB/s', log: false, value: (t) => t.mbPerS },
    { title: 'Peak RSS of the tool process (log scale, lower is better)', unit: 'MB', log: true, value: (t) => t.rssMb, line: { at: 150, label: 'target 150 MB' } },
  ];
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  out.push(`<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">etcd-shield vs alternatives, by keyspace size (median of runs)</text>`);
  out.push(`<text x="${W / 2}" y="40" text-anchor="middle" fill="#555">${esc(machine)}</text>`);

  const xs = sizes.map((s) => Math.log10(s.keys));
  const xMin = Math.min(...xs) - 0.3;
  const xMax = Math.max(...xs) + 0.3;
  panels.forEach((p, pi) => {
    const left = lefts[pi]!;
    const vals = sizes.flatMap((s) => Object.values(s.tools).map(p.value)).filter((v) => v > 0);
    if (p.line) vals.push(p.line.at);
    let yMin: number;
    let yMax: number;
    if (p.log) {
      yMin = Math.pow(10, Math.floor(Math.log10(Math.min(...vals))));
      yMax = Math.pow(10, Math.ceil(Math.log10(Math.max(...vals))));
    } else {
      yMin = 0;
      const m = Math.max(...vals) * 1.1;
      const step = Math.pow(10, Math.floor(Math.log10(m)));
      yMax = Math.ceil(m / step) * step;
    }
    const X = (keys: number) => left + ((Math.log10(keys) - xMin) / (xMax - xMin)) * panelW;
    const Y = (v: number) =>
      top + panelH - (p.log ? (Math.log10(v) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin)) : (v - yMin) / (yMax - yMin)) * panelH;
    out.push(`<text x="${left + panelW / 2}" y="${top - 8}" text-anchor="middle" font-weight="bold">${esc(p.title)}</text>`);
    out.push(`<rect x="${left}" y="${top}" width="${panelW}" height="${panelH}" fill="none" stroke="#999"/>`);
    // y grid
    const ticks: number[] = [];
    if (p.log) for (let v = yMin; v <= yMax * 1.001; v *= 10) ticks.push(v);
    else for (let i = 0; i <= 5; i++) ticks.push(yMin + ((yMax - yMin) * i) / 5);
    for (const v of ticks) {
      out.push(`<line x1="${left}" x2="${left + panelW}" y1="${Y(v).toFixed(1)}" y2="${Y(v).toFixed(1)}" stroke="#eee"/>`);
      out.push(`<text x="${left - 6}" y="${(Y(v) + 4).toFixed(1)}" text-anchor="end" fill="#555">${fmtNum(v)}</text>`);
    }
    out.push(`<text x="${left - 50}" y="${top + panelH / 2}" text-anchor="middle" transform="rotate(-90 ${left - 50} ${top + panelH / 2})" fill="#555">${p.unit}</text>`);
    for (const s of sizes) {
      out.push(`<line x1="${X(s.keys).toFixed(1)}" x2="${X(s.keys).toFixed(1)}" y1="${top}" y2="${top + panelH}" stroke="#eee"/>`);
      out.push(`<text x="${X(s.keys).toFixed(1)}" y="${top + panelH + 16}" text-anchor="middle" fill="#555">${fmtKeys(s.keys)} keys</text>`);
    }
    if (p.line) {
      const y = Y(p.line.at).toFixed(1);
      out.push(`<line x1="${left}" x2="${left + panelW}" y1="${y}" y2="${y}" stroke="#d62728" stroke-dasharray="6 4"/>`);
      out.push(`<text x="${left + 6}" y="${Number(y) - 5}" fill="#d62728">${esc(p.line.label)}</text>`);
    }
    tools.forEach((t, ti) => {
      const pts = sizes.filter((s) => s.tools[t] && p.value(s.tools[t]!) > 0).map((s) => [X(s.keys), Y(p.value(s.tools[t]!))] as const);
      if (!pts.length) return;
      const c = color(t, ti);
      if (pts.length > 1) out.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' ')}"/>`);
      for (const [x, y] of pts) out.push(`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3.5" fill="${c}"/>`);
    });
  });
  // legend
  const legendY = top + panelH + 42;
  tools.forEach((t, ti) => {
    const col = ti % 4;
    const row = Math.floor(ti / 4);
    const x = 70 + col * 235;
    const y = legendY + row * 20;
    out.push(`<rect x="${x}" y="${y - 9}" width="14" height="10" fill="${color(t, ti)}"/>`);
    out.push(`<text x="${x + 20}" y="${y}">${esc(t)}</text>`);
  });
  const dates = sizes.map((s) => `${fmtKeys(s.keys)}: ${s.date.slice(0, 10)}, ${s.runs} run${s.runs > 1 ? 's' : ''}`).join(' · ');
  out.push(`<text x="${W / 2}" y="${H - 8}" text-anchor="middle" fill="#888" font-size="11">${esc(dates)}</text>`);
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
