// The status page: reads /api/jobs every few seconds and fills the page.
// Every value goes in through textContent or an SVG attribute, never as HTML.
'use strict';

const REFRESH_MS = 5000;
const BACKUPS_MS = 30000;
const CHART_RUNS = 20;
const TOKEN_KEY = 'etcd-shield-token';
const SVG = 'http://www.w3.org/2000/svg';
const HEALTH = { ok: 'OK', late: 'Late', failing: 'Failing', idle: 'Idle' };

const cards = new Map();
const tokenInput = document.getElementById('token');
tokenInput.value = sessionStorage.getItem(TOKEN_KEY) || '';
tokenInput.addEventListener('input', () => {
  if (tokenInput.value) sessionStorage.setItem(TOKEN_KEY, tokenInput.value);
  else sessionStorage.removeItem(TOKEN_KEY);
});

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function bytes(n) {
  if (n === undefined || n === null) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

function seconds(s) {
  if (s === undefined || s === null) return '';
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 120) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

function relative(iso) {
  const d = (Date.parse(iso) - Date.now()) / 1000;
  const a = Math.abs(d);
  const span = a < 60 ? `${Math.round(a)} s` : a < 3600 ? `${Math.round(a / 60)} min` : a < 172800 ? `${(a / 3600).toFixed(1)} h` : `${Math.round(a / 86400)} d`;
  return d >= 0 ? `in ${span}` : `${span} ago`;
}

function when(iso) {
  if (!iso) return '—';
  return `${new Date(iso).toLocaleString()} (${relative(iso)})`;
}

/** Today's times as HH:MM:SS, older ones with their date. */
function shortTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const time = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  return d.toDateString() === new Date().toDateString() ? time : `${d.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${time}`;
}

function field(card, cls, text) {
  card.querySelector(`.${cls}`).textContent = text;
}

function cardFor(job) {
  let card = cards.get(job.name);
  if (card) return card;
  const node = document.getElementById('job-card').content.firstElementChild.cloneNode(true);
  node.dataset.job = job.name;
  node.querySelector('.run-now').addEventListener('click', () => runNow(job.name, node));
  document.getElementById('jobs').append(node);
  card = { node, backupsAt: 0, backupsSig: '' };
  cards.set(job.name, card);
  return card;
}

function render(data) {
  const role = document.getElementById('role');
  role.textContent = data.role.leader ? 'leader' : 'follower';
  role.className = `badge ${data.role.leader ? 'leader' : 'follower'}`;
  document.getElementById('instance').textContent = data.role.ha ? `${data.role.instance} · election ${data.role.election}` : data.role.instance;
  for (const job of data.jobs) {
    const card = cardFor(job);
    renderJob(card.node, job, data.role);
    const sig = `${job.lastRun ? `${job.lastRun.id}:${job.lastRun.status}` : ''}:${job.backupsKept}`;
    if (sig !== card.backupsSig || Date.now() - card.backupsAt > BACKUPS_MS) {
      card.backupsSig = sig;
      card.backupsAt = Date.now();
      loadBackups(job.name, card.node);
    }
  }
}

function renderJob(node, job, role) {
  node.dataset.health = job.health;
  field(node, 'name', job.name);
  field(node, 'health', job.running ? `${HEALTH[job.health]} · running` : HEALTH[job.health]);
  field(node, 'store', job.store);
  field(node, 'prefix', `${job.prefix === '' ? 'every key' : job.prefix}${job.mode === 'snapshot' ? ' (etcd snapshot)' : ''}`);
  field(node, 'schedule', `${job.schedule} (${job.timezone})`);
  field(node, 'next-run', role.leader ? when(job.nextRun) : 'the leader runs it');
  field(node, 'last-success', job.lastSuccess ? when(job.lastSuccess.finishedAt) : 'never');
  field(node, 'kept', job.backupsKept === undefined ? '—' : String(job.backupsKept));
  field(node, 'counts', `${job.successes} ok · ${job.failures} failed · ${job.skips} skipped`);
  node.querySelector('.changes-field').hidden = !job.changes;
  if (job.changes) field(node, 'changes', changesText(job.changes, role));
  const button = node.querySelector('.run-now');
  button.disabled = job.running || !role.leader;
  button.title = !role.leader ? 'this instance is a follower: the leader runs backups' : job.running ? 'a run is in progress' : '';
  renderRuns(node.querySelector('.runs tbody'), job.runs);
  renderChart(node.querySelector('.chart'), job.runs);
}

function changesText(c, role) {
  if (c.error) return `stopped: ${c.error.message} — ${c.error.hint}`;
  if (!c.running) return role.leader ? 'not following' : 'the leader follows it';
  if (c.coveredRevision === undefined) return `following, first segment within ${c.flushSeconds} s`;
  return `up to revision ${c.coveredRevision}, ${seconds(c.lagSeconds)} behind · ${c.segments} segments${c.gaps ? ` · ${c.gaps} gaps` : ''}`;
}

function renderRuns(tbody, runs) {
  const rows = [];
  for (const run of runs.slice(0, 8)) {
    const tr = el('tr');
    tr.dataset.run = run.id;
    tr.append(
      el('td', run.kind === 'verify' ? `verify ${run.status}` : run.status, `status ${run.status}`),
      el('td', shortTime(run.startedAt)),
      el('td', run.trigger),
      el('td', seconds(run.durationSeconds), 'num'),
      el('td', run.keys === undefined ? '' : String(run.keys), 'num'),
      el('td', bytes(run.bytes), 'num'),
      el('td', run.revision === undefined ? '' : String(run.revision), 'num'),
    );
    rows.push(tr);
    const why = run.error ? `${run.error.message} — ${run.error.hint}` : run.reason;
    if (why) {
      const note = el('tr', undefined, 'error-row');
      const td = el('td', why);
      td.colSpan = 7;
      note.append(td);
      rows.push(note);
    }
  }
  if (!rows.length) {
    const td = el('td', 'no runs yet', 'muted');
    td.colSpan = 7;
    const tr = el('tr');
    tr.append(td);
    rows.push(tr);
  }
  tbody.replaceChildren(...rows);
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** Bars of stored size and a line of duration over the recent successful backups, oldest on the left. */
function renderChart(box, runs) {
  const points = runs.filter((r) => r.kind === 'backup' && r.status === 'succeeded').slice(0, CHART_RUNS).reverse();
  if (!points.length) {
    box.replaceChildren(el('p', 'no successful backup yet', 'muted'));
    return;
  }
  const W = 600, H = 120, L = 58, R = 52, T = 10, B = 16;
  const maxBytes = Math.max(1, ...points.map((p) => p.bytes || 0));
  const maxSecs = Math.max(0.001, ...points.map((p) => p.durationSeconds || 0));
  const step = (W - L - R) / Math.max(points.length, 10);
  const y = (v, max) => T + (H - T - B) * (1 - v / max);
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'stored size and duration of recent backups' });
  chart.append(
    svg('line', { x1: L, x2: W - R, y1: T, y2: T, class: 'grid' }),
    svg('line', { x1: L, x2: W - R, y1: H - B, y2: H - B, class: 'grid' }),
    svg('text', { x: L - 6, y: T + 4, 'text-anchor': 'end', class: 'axis' }, bytes(maxBytes)),
    svg('text', { x: L - 6, y: H - B, 'text-anchor': 'end', class: 'axis' }, '0'),
    svg('text', { x: W - R + 6, y: T + 4, class: 'axis' }, seconds(maxSecs)),
    svg('text', { x: W - R + 6, y: H - B, class: 'axis' }, '0 s'),
  );
  const line = [];
  points.forEach((p, i) => {
    const x = L + step * i;
    const top = y(p.bytes || 0, maxBytes);
    const bar = svg('rect', { x: x + step * 0.15, y: top, width: step * 0.7, height: H - B - top, class: 'bar' });
    bar.append(svg('title', {}, `${shortTime(p.startedAt)}: ${bytes(p.bytes)}, ${seconds(p.durationSeconds)}`));
    chart.append(bar);
    line.push([x + step / 2, y(p.durationSeconds || 0, maxSecs)]);
  });
  chart.append(svg('polyline', { points: line.map((p) => p.join(',')).join(' '), class: 'line' }));
  for (const [cx, cy] of line) chart.append(svg('circle', { cx, cy, r: 2.5, class: 'point' }));
  box.replaceChildren(chart);
}

async function loadBackups(name, node) {
  const tbody = node.querySelector('.backups tbody');
  const note = node.querySelector('.backups-note');
  try {
    const res = await fetch(`/api/jobs/${encodeURIComponent(name)}/backups`, { cache: 'no-store' });
    const body = await res.json();
    if (!res.ok) throw new Error(body.error ? `${body.error.message} — ${body.error.hint}` : `HTTP ${res.status}`);
    const rows = body.backups.slice().reverse().slice(0, 10).map((b) => {
      const tr = el('tr');
      tr.dataset.backup = b.name;
      tr.append(
        el('td', shortTime(b.takenAt)),
        el('td', b.revision, 'num'),
        el('td', String(b.keys), 'num'),
        el('td', bytes(b.storedBytes), 'num'),
        el('td', b.encryption.type === 'age' ? `age (${b.encryption.recipients.length})` : 'none'),
      );
      return tr;
    });
    tbody.replaceChildren(...rows);
    const extra = [];
    if (body.backups.length > rows.length) extra.push(`${body.backups.length} in all, newest ${rows.length} shown`);
    if (!body.backups.length) extra.push('the store holds no complete backup yet');
    if (body.incomplete.length) extra.push(`${body.incomplete.length} incomplete archive(s)`);
    if (body.unfinished.length) extra.push(`${body.unfinished.length} unfinished write(s) of killed runs`);
    if (body.problems.length) extra.push(`${body.problems.length} unreadable manifest(s)`);
    note.textContent = extra.join(' · ');
    note.classList.remove('error');
  } catch (err) {
    note.textContent = `cannot list the store: ${err.message}`;
    note.classList.add('error');
  }
}

async function runNow(name, node) {
  const message = node.querySelector('.run-message');
  const button = node.querySelector('.run-now');
  button.disabled = true;
  message.className = 'run-message';
  message.textContent = 'starting…';
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.authorization = `Bearer ${token}`;
  try {
    const res = await fetch(`/api/jobs/${encodeURIComponent(name)}/run`, { method: 'POST', headers });
    const body = await res.json();
    if (!res.ok) throw new Error(body.error ? `${body.error.message} — ${body.error.hint}` : `HTTP ${res.status}`);
    message.textContent = `started run ${body.run.id}`;
  } catch (err) {
    message.className = 'run-message error';
    message.textContent = err.message;
  }
  refresh();
}

async function refresh() {
  const banner = document.getElementById('banner');
  try {
    const res = await fetch('/api/jobs', { cache: 'no-store' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    render(await res.json());
    banner.hidden = true;
    document.getElementById('refreshed').textContent = `refreshed ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    banner.textContent = `cannot reach the service (${err.message}); the page shows what it last saw and keeps trying`;
    banner.hidden = false;
  }
}

refresh();
setInterval(refresh, REFRESH_MS);
