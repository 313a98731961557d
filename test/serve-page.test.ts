// The status page of the real `etcd-shield serve`, in a real headless
// browser (Debian's chromium through playwright-core): it shows each job
// and its last status, "Back up now" starts a run (from loopback, without
// a token), and the page changes on its own. The screenshot goes to the
// test's temp dir, or to docs/serve-page.png with UPDATE_SCREENSHOT=1.
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { repoRoot } from './cli';
import { type EtcdCluster, freePort, makeTestDir, removeTestDir, startEtcd } from './harness';
import { type ServeProcess, startServe } from './serve-harness';

const NEVER = '"0 0 0 1 1 *"'; // runs come from start-up and the API only
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let etcd: EtcdCluster;
let dir: string;
let serve: ServeProcess;
let browser: Browser;
const problems: string[] = [];

async function put(prefix: string, from: number, n: number): Promise<void> {
  for (let i = from; i < from + n; i++) await etcd.etcdctl(['put', `${prefix}k${String(i).padStart(4, '0')}`, `value-${i}-${'x'.repeat(i % 50)}`]);
}

async function runViaApi(job: string): Promise<string> {
  const res = await fetch(`${serve.url}/api/jobs/${job}/run`, { method: 'POST' });
  const body = (await res.json()) as { run: { id: string } };
  assert.equal(res.status, 202, JSON.stringify(body));
  await serve.waitForLog((l) => l.event === 'end' && l.run === body.run.id, `run ${body.run.id} to end`);
  return body.run.id;
}

before(async () => {
  dir = makeTestDir();
  etcd = await startEtcd();
  await put('/app/', 0, 150);
  await put('/events/', 0, 40);
  execFileSync('age-keygen', ['-o', join(dir, 'key.txt')], { stdio: 'ignore' });
  const recipient = /public key: (age1\w+)/.exec(readFileSync(join(dir, 'key.txt'), 'utf8'))![1]!;
  const deadEtcd = `http://127.0.0.1:${await freePort()}`;
  const job = (name: string, url: string, lines: string[]) => [`  - name: ${name}`, `    etcd: { url: "${url}", timeout: "1" }`, `    schedule: ${NEVER}`, ...lines.map((l) => `    ${l}`)];
  serve = await startServe({
    dir,
    config: (port) =>
      [
        `listen: 127.0.0.1:${port}`,
        'jobs:',
        ...job('main', etcd.url, ['prefix: /app/', 'to: ./stores/main', 'keep: { last: 6 }']),
        ...job('events', etcd.url, ['prefix: /events/', 'to: ./stores/events', `encrypt_to: [${recipient}]`]),
        ...job('archive', deadEtcd, ['to: ./stores/archive']),
        '',
      ].join('\n'),
  });
  // Each store is empty, so each job runs once at start-up; the one whose etcd is down fails.
  await serve.waitForCount((l) => l.event === 'end', 3, 'the three start-up runs');
  // A history for the chart: the prefix grows between runs.
  for (let i = 1; i <= 5; i++) {
    await put('/app/', 150 * i, 60);
    await runViaApi('main');
  }
  await runViaApi('events');
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
});

after(async () => {
  await browser?.close();
  await serve?.stop(5000);
  await etcd?.stop();
  await removeTestDir(dir);
});

async function openPage(): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  await page.goto(serve.url + '/');
  await page.locator('[data-job="archive"] .runs tbody tr[data-run]').first().waitFor();
  return page;
}

const text = (page: Page, selector: string) => page.locator(selector).first().textContent();

/** Polls what the page shows (it refreshes itself every 5 s) until check holds. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) assert.fail(`the page did not show ${what} within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('the page shows each job at a glance: health, schedule, next run, last runs, backups in the store, the chart', async () => {
  const page = await openPage();
  try {
    assert.equal(await text(page, '#role'), 'leader');
    assert.match((await text(page, '#refreshed'))!, /^refreshed /);
    const cards = page.locator('section.job');
    assert.deepEqual(await Promise.all([0, 1, 2].map((i) => cards.nth(i).getAttribute('data-job'))), ['main', 'events', 'archive']);
    assert.equal(await cards.count(), 3);

    const main = '[data-job="main"]';
    assert.equal(await page.getAttribute(main, 'data-health'), 'ok');
    assert.equal(await text(page, `${main} .health`), 'OK');
    assert.equal(await text(page, `${main} .schedule`), '0 0 0 1 1 * (UTC)');
    assert.match((await text(page, `${main} .next-run`))!, /\(in \d/);
    assert.equal(await text(page, `${main} .kept`), '6');
    assert.equal(await page.locator(`${main} .runs tbody tr[data-run]`).count(), 6, 'the start-up run and five from the API');
    assert.equal(await text(page, `${main} .runs tbody tr[data-run] .status`), 'succeeded');
    assert.equal(await page.locator(`${main} .chart svg rect.bar`).count(), 6, 'a bar per successful backup');
    await page.locator(`${main} .backups tbody tr[data-backup]`).nth(5).waitFor();
    assert.equal(await page.locator(`${main} .backups tbody tr[data-backup]`).count(), 6);
    // The newest backup is listed first, with the keys it holds.
    assert.equal(await page.locator(`${main} .backups tbody tr[data-backup] td`).nth(2).textContent(), String(150 + 5 * 60));

    await page.locator('[data-job="events"] .backups tbody tr[data-backup]').first().waitFor();
    assert.equal(await page.locator('[data-job="events"] .backups tbody tr[data-backup] td').nth(4).textContent(), 'age (1)');

    const broken = '[data-job="archive"]';
    assert.equal(await page.getAttribute(broken, 'data-health'), 'failing');
    assert.equal(await text(page, `${broken} .health`), 'Failing');
    assert.equal(await text(page, `${broken} .runs .status`), 'failed');
    assert.match((await text(page, `${broken} .runs tr.error-row td`))!, /etcd is running and reachable/, 'the error and its hint are shown');
    assert.equal(await text(page, `${broken} .last-success`), 'never');
    assert.deepEqual(problems, [], 'no script error, no refused resource');
  } finally {
    await page.close();
  }
});

test('"Back up now" starts a run without a token from loopback, and the page shows it end without a reload', async () => {
  const page = await openPage();
  try {
    const main = '[data-job="main"]';
    const before = await page.locator(`${main} .runs tbody tr[data-run]`).first().getAttribute('data-run');
    await put('/app/', 2000, 80);
    await page.click(`${main} .run-now`);
    await until('the run it started', async () => /^started run /.test((await text(page, `${main} .run-message`)) ?? ''));
    const id = (await text(page, `${main} .run-message`))!.replace('started run ', '');
    assert.notEqual(id, before);
    // The service ran it (its log says so), and the page, refreshing on its own, shows it succeeded.
    const end = await serve.waitForLog((l) => l.event === 'end' && l.run === id, 'the run started from the page');
    assert.equal(end.status, 'succeeded');
    assert.equal(serve.logs().find((l) => l.event === 'start' && l.run === id)?.trigger, 'api');
    const newest = page.locator(`${main} .runs tbody tr[data-run]`).first();
    await until(`run ${id} succeeded`, async () => (await newest.getAttribute('data-run')) === id && (await newest.locator('.status').textContent()) === 'succeeded');
    assert.equal(await page.locator(`${main} .runs tbody tr[data-run] td.num`).nth(1).textContent(), String(150 + 5 * 60 + 80));
    // keep last 6: still six backups, the newest now first.
    await until('the new backup in the store', async () => (await text(page, `${main} .backups tbody tr[data-backup] td:nth-child(3)`)) === '530');
    assert.equal(await page.locator(`${main} .backups tbody tr[data-backup]`).count(), 6);
    assert.equal(await page.locator(`${main} .chart svg rect.bar`).count(), 7);
    assert.deepEqual(problems, [], 'no script error, no refused resource');
    const shot = process.env.UPDATE_SCREENSHOT === '1' ? join(repoRoot, 'docs', 'serve-page.png') : join(dir, 'serve-page.png');
    assert.ok((await page.screenshot({ path: shot, fullPage: true })).length > 10_000);
  } finally {
    await page.close();
  }
});
