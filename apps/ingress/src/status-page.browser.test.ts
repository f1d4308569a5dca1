/**
 * The status page in a real browser: Debian's Chromium driven by
 * playwright-core against the ingress app (in-process) on a seeded throwaway
 * database, a Kobo simulator, and a real poller and loader. It logs in,
 * checks the counts, presses "Sync now" and sees the run, opens a dead letter
 * and replays it, and checks that a cross-site post, a post without the CSRF
 * token, and the read-only account change nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { openAdminFixture, type AdminFixture } from '@fieldsync/admin/testing';
import { testLog as log, until } from '@fieldsync/sync/testing';
import { createIngressApp } from './app.ts';
import { createMetrics } from './metrics.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ADMIN = { user: 'ops', password: 'ops-pw' };
const VIEWER = { user: 'viewer', password: 'viewer-pw' };
const SCREENSHOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../../artifacts/status-page.png');

const listen = (s: Server) => new Promise<string>((ok) => s.listen(0, '127.0.0.1', () => ok(`http://127.0.0.1:${(s.address() as AddressInfo).port}`)));

describe('status page in headless Chromium', () => {
  let f: AdminFixture;
  let server: Server;
  let base: string;
  const dirs: string[] = [];
  const contexts: BrowserContext[] = [];

  async function browser(who: { user: string; password: string }): Promise<Page> {
    const dir = mkdtempSync(join(tmpdir(), 'fs-chromium-'));
    dirs.push(dir);
    // A persistent context is how playwright takes a fresh --user-data-dir of our own.
    const ctx = await chromium.launchPersistentContext(dir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      httpCredentials: { username: who.user, password: who.password },
      viewport: { width: 1600, height: 1000 },
      timeout: 30_000,
    });
    contexts.push(ctx);
    ctx.setDefaultTimeout(15_000);
    return ctx.pages()[0] ?? (await ctx.newPage());
  }

  /** Reloads until the page shows what is expected (the page also refreshes itself, but slower than a test wants). */
  async function reloadUntil(page: Page, ok: () => Promise<boolean>, ms = 20_000) {
    const end = Date.now() + ms;
    while (!(await ok())) {
      if (Date.now() > end) throw new Error(`page never showed the expected state; it shows:\n${(await page.textContent('body'))?.slice(0, 2000)}`);
      await new Promise((r) => setTimeout(r, 300));
      await page.reload();
    }
  }

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(`Chromium not found at ${CHROMIUM}: install Debian's build (apt-get install -y chromium; .ci/run does this) or set CHROMIUM_PATH`);
    }
    f = await openAdminFixture({ submissions: 30 });
    f.h.startLoader();
    f.h.startPoller(f.config);
    const app = createIngressApp({
      config: f.config, queues: f.h.queues, redis: f.h.redis, log, metrics: createMetrics(),
      admin: ADMIN, adminReadonly: VIEWER, db: () => f.h.db,
    });
    server = createServer(app);
    base = await listen(server);
  });
  afterAll(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
    await f?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('admin: counts, sync now, a dead letter opened and replayed; cross-site and token-less posts refused', async () => {
    const deadId = await f.deadLetter('page', 2);
    const page = await browser(ADMIN);
    // /admin leads to the status page by itself.
    await page.goto(`${base}/admin`);
    await page.waitForURL(`${base}/admin/status`);
    const row = page.locator(`tr[data-source="kobo"][data-form="${f.asset}"]`);
    await expect.poll(() => row.locator('td.live').textContent()).toBe('0');
    expect(await row.locator('td.dead').textContent()).toBe('1');
    expect(await page.locator('#dead-total').textContent()).toBe('1');
    expect(await page.locator('a[href$="/admin/queues"]').count()).toBe(1);

    // Sync now: the run appears, with the 30 records the simulator holds.
    await row.locator('button[data-action="poll"]').click();
    await page.waitForURL(/\/admin\/status\?msg=/);
    expect(await page.locator('#flash').textContent()).toMatch(/poll of kobo\/.+ queued/);
    await reloadUntil(page, async () => (await row.locator('td.live').textContent()) === '30');
    const run = page.locator('#runs tr.run').first();
    expect(await run.locator('td').nth(3).textContent()).toBe('poll');
    expect(await run.locator('td').nth(4).textContent()).toBe('ok');
    expect(await run.locator('td').nth(7).textContent()).toBe('30');
    expect(await row.locator('td').nth(3).textContent()).toMatch(/ok.*fetched 30/s);

    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    console.log(`status page screenshot: ${SCREENSHOT}`);

    // Backfill asks first; dismissing the confirmation queues nothing.
    const before = await f.h.queues.poll.getJobCountByTypes('waiting', 'active', 'completed', 'failed', 'delayed');
    page.once('dialog', (d) => void d.dismiss());
    await row.locator('button[data-action="backfill"]').click();
    await new Promise((r) => setTimeout(r, 300));
    expect(await f.h.queues.poll.getJobCountByTypes('waiting', 'active', 'completed', 'failed', 'delayed')).toBe(before);

    // A post without the page's token is refused, and so is one from another site (with a guessed token).
    const bare = await page.request.post(`${base}/admin/status/sync`, { form: { sourceId: 'kobo', formId: f.asset, mode: 'backfill' } });
    expect(bare.status()).toBe(403);
    expect((await bare.json()).error).toBe('csrf');
    const evil = createServer((_req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end(`<form id="f" method="post" action="${base}/admin/status/sync"><input name="sourceId" value="kobo"><input name="formId" value="${f.asset}"><input name="mode" value="backfill"><input name="_csrf" value="guess"></form><script>document.getElementById('f').submit()</script>`);
    });
    const evilBase = (await listen(evil)).replace('127.0.0.1', 'localhost');
    // The attacker's page, in another tab of the same logged-in browser.
    const tab = await page.context().newPage();
    try {
      const answer = tab.waitForResponse((r) => r.url() === `${base}/admin/status/sync`);
      await tab.goto(evilBase);
      expect((await answer).status()).toBe(403);
      await tab.waitForLoadState();
      expect(await tab.textContent('body')).toMatch(/cross_site|csrf/);
    } finally {
      await tab.close();
      // The browser keeps its connections to the page's server alive: close() alone would wait for them.
      evil.closeAllConnections();
      await new Promise((r) => evil.close(r));
    }
    expect(await f.h.db.prisma.syncRun.count({ where: { mode: 'backfill' } })).toBe(0);
    expect(await f.h.queues.poll.getJobCountByTypes('waiting', 'active', 'completed', 'failed', 'delayed')).toBe(before);

    // Open the dead letter: its payload and error; replay it; the count drops and its records are stored.
    await page.goto(`${base}/admin/status`);
    await page.locator(`#dead-letters a[href$="/dead-letters/${deadId}"]`).click();
    expect(await page.locator('#error').textContent()).toMatch(/ECONNREFUSED/);
    expect(await page.locator('#payload').textContent()).toContain('dead-page-1');
    await page.locator('button[data-action="replay"]').click();
    await page.waitForURL(/\/admin\/status\?msg=/);
    expect(await page.locator('#flash').textContent()).toMatch(/2 record\(s\) sent back/);
    expect(await page.locator('#dead-total').textContent()).toBe('0');
    await reloadUntil(page, async () => (await row.locator('td.live').textContent()) === '32');
    expect(await row.locator('td.dead').textContent()).toBe('0');
    await until(() => f.h.db.prisma.submission.count({ where: { key: { startsWith: 'dead-page-' } } }), (n) => n === 2);
  });

  it('read-only account: sees everything, has no action buttons, its posts are refused, Bull Board is read-only', async () => {
    await f.deadLetter('viewer', 1);
    const page = await browser(VIEWER);
    await page.goto(`${base}/admin/status`);
    const row = page.locator(`tr[data-source="kobo"][data-form="${f.asset}"]`);
    expect(await row.locator('td.live').textContent()).toBe('32');
    expect(await page.locator('#dead-total').textContent()).toBe('1');
    expect(await page.locator('text=(read-only)').count()).toBe(1);
    expect(await page.locator('button').count()).toBe(0);
    // Its own valid token does not make it an admin.
    const { token } = await (await page.request.get(`${base}/admin/api/csrf`)).json();
    const post = await page.request.post(`${base}/admin/status/replay`, { form: { _csrf: token } });
    expect(post.status()).toBe(403);
    expect((await post.json()).error).toBe('read_only');
    const api = await page.request.post(`${base}/admin/api/dead-letters/replay`, { data: {}, headers: { 'x-csrf-token': token } });
    expect(api.status()).toBe(403);
    expect(await page.locator('#dead-total').textContent()).toBe('1');
    // Bull Board: the same queues, each in read-only mode for this account (and not for the admin).
    const roQueues = await (await page.request.get(`${base}/admin/queues/api/queues`)).json();
    expect(roQueues.queues.length).toBe(3);
    expect(roQueues.queues.every((q: { readOnlyMode: boolean }) => q.readOnlyMode)).toBe(true);
    const adminQueues = await (await page.request.get(`${base}/admin/queues/api/queues`, { headers: { authorization: `Basic ${Buffer.from(`${ADMIN.user}:${ADMIN.password}`).toString('base64')}` } })).json();
    expect(adminQueues.queues.every((q: { readOnlyMode: boolean }) => !q.readOnlyMode)).toBe(true);
    await page.goto(`${base}/admin/queues`);
    await page.waitForSelector('text=fieldsync (read-only)', { timeout: 15_000 });
  });
});
