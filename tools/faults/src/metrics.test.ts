/**
 * Issue 16, test 3: every metric the docs (docs/metrics.md, the README's
 * metrics section), the alert rules and the dashboard name is exported by a
 * running app — the real ingress, poller and loader processes — after a
 * backfill from a Kobo simulator and a few webhooks, with a non-zero value
 * where data flowed. A second loader on the same metrics port keeps working.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { METRICS, markdownMetricsSection, metricNamesIn } from '@fieldsync/metrics';
import { ROOT, freePort, waitFor } from './processes.ts';
import { openKoboPipeline, tails, type KoboPipeline } from './kobo-pipeline.ts';

const POLLED = 1_200;
const HOOKED = 5;

/** Prometheus text format → the declared metric names and every sample (`name{labels}` → value). */
function parseExposition(text: string): { declared: Set<string>; samples: { name: string; labels: Record<string, string>; value: number }[] } {
  const declared = new Set<string>();
  const samples = [];
  for (const line of text.split('\n')) {
    const t = /^# TYPE (\S+) \S+/.exec(line);
    if (t) declared.add(t[1]!);
    const s = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!s) continue;
    const labels = Object.fromEntries([...(s[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!]));
    samples.push({ name: s[1]!, labels, value: Number(s[3]) });
  }
  return { declared, samples };
}

let p: KoboPipeline;
const ports = { loader: 0, poller: 0 };

beforeAll(async () => {
  p = await openKoboPipeline({ submissions: POLLED, pageSize: 500, batchSize: 200 });
  for (const k of Object.keys(ports) as (keyof typeof ports)[]) ports[k] = await freePort();
  p.start('ingress');
  p.start('loader', { METRICS_PORT: String(ports.loader) });
  p.start('poller', { METRICS_PORT: String(ports.poller) });
  const loaded = () => p.t.db.prisma.submission.count();
  try {
    await waitFor('the ingress to listen', async () => (await fetch(`${p.ingressUrl}/metrics`).catch(() => null))?.ok === true, 60_000, 200);
    p.kobo.setRestService({ url: p.webhookUrl, auth: p.hookAuth, retryDelaysMs: [500, 1_000, 2_000], timeoutMs: 10_000 });
    p.kobo.createSubmissions(p.hookAsset, HOOKED);
    const delivered = await p.kobo.flushRestService();
    expect(delivered.map((d) => d.ok)).toEqual(Array(HOOKED).fill(true));
    await waitFor(`${POLLED + HOOKED} records loaded`, async () => (await loaded()) === POLLED + HOOKED, 120_000, 200);
    await waitFor('the backfill run to finish', async () => (await p.t.db.prisma.syncRun.count({ where: { formId: p.asset, mode: 'poll', outcome: 'ok' } })) > 0, 30_000, 200);
  } catch (err) {
    (err as Error).message += `\n${tails(p.apps)}`;
    throw err;
  }
});

afterAll(async () => {
  await p?.close();
});

const scrape = async (base: string) => {
  const res = await fetch(`${base}/metrics`);
  expect(res.status).toBe(200);
  return parseExposition(await res.text());
};

describe('metrics of the running apps after a backfill and webhooks', () => {
  it('export every metric the docs, alert rules and dashboard name, with data where data flowed', async () => {
    const [ingress, loader, poller] = await Promise.all([scrape(p.ingressUrl), scrape(`http://127.0.0.1:${ports.loader}`), scrape(`http://127.0.0.1:${ports.poller}`)]);
    const exported = new Set([...ingress.declared, ...loader.declared, ...poller.declared]);
    const readme = existsSync(path.join(ROOT, 'README.md')) ? markdownMetricsSection(readFileSync(path.join(ROOT, 'README.md'), 'utf8')) : '';
    const named = metricNamesIn(
      [readme, ...['docs/metrics.md', 'deploy/prometheus/alerts.yml', 'deploy/grafana/fieldsync.json'].map((f) => readFileSync(path.join(ROOT, f), 'utf8'))].join('\n'),
    );
    expect(named.filter((n) => !exported.has(n))).toEqual([]);
    expect(named).toHaveLength(Object.keys(METRICS).length); // the docs list them all
    // Each app exports what its definition says it does.
    for (const d of Object.values(METRICS)) for (const app of d.apps) expect({ ingress, loader, poller }[app].declared.has(d.name), `${app} ${d.name}`).toBe(true);

    const sum = (x: ReturnType<typeof parseExposition>, name: string, where: Record<string, string> = {}) =>
      x.samples.filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);
    const values = {
      loadedByPoll: sum(loader, 'fieldsync_records_loaded_total', { source: 'kobo', form: p.asset, via: 'poll' }),
      loadedByWebhook: sum(loader, 'fieldsync_records_loaded_total', { source: 'kobo', via: 'webhook' }),
      batchesOk: sum(loader, 'fieldsync_ingest_batch_duration_seconds_count', { outcome: 'ok' }),
      pollsOk: sum(poller, 'fieldsync_sync_runs_total', { source: 'kobo', form: p.asset, mode: 'poll', outcome: 'ok' }),
      pollDurations: sum(poller, 'fieldsync_sync_run_duration_seconds_count', { source: 'kobo', mode: 'poll', outcome: 'ok' }),
      fetched: sum(poller, 'fieldsync_records_fetched_total', { source: 'kobo', form: p.asset, mode: 'poll' }),
      http200: sum(poller, 'fieldsync_source_http_requests_total', { source: 'kobo', status: '200' }),
      webhooks202: sum(ingress, 'fieldsync_webhook_requests_total', { source: 'kobo', status: '202' }),
      webhookEnqueued: sum(ingress, 'fieldsync_webhook_submissions_enqueued_total', { source: 'kobo' }),
      ingestCompletedSeenByLoader: sum(loader, 'fieldsync_queue_jobs', { queue: 'ingest', state: 'completed' }),
      ingestCompletedSeenByPoller: sum(poller, 'fieldsync_queue_jobs', { queue: 'ingest', state: 'completed' }),
      deadLetters: sum(loader, 'fieldsync_dead_letters_total'),
      loginFailures: sum(poller, 'fieldsync_source_login_failures_total'),
    };
    console.log(`[metrics] after ${POLLED} polled + ${HOOKED} webhook records: ${JSON.stringify(values)}`);
    expect(values).toEqual({
      loadedByPoll: POLLED,
      loadedByWebhook: HOOKED,
      batchesOk: expect.any(Number),
      pollsOk: 1,
      pollDurations: 1,
      fetched: POLLED,
      http200: expect.any(Number),
      webhooks202: HOOKED,
      webhookEnqueued: HOOKED,
      ingestCompletedSeenByLoader: expect.any(Number),
      ingestCompletedSeenByPoller: expect.any(Number),
      deadLetters: 0,
      loginFailures: 0,
    });
    // 1,200 records in batches of 200 are at least 6 batches, plus at least one for the webhooks (concurrent
    // webhooks of a form share a job); pages of 500 are 3 requests, plus form definitions.
    expect(values.batchesOk).toBeGreaterThanOrEqual(POLLED / 200 + 1);
    expect(values.http200).toBeGreaterThanOrEqual(3);
    expect(values.ingestCompletedSeenByLoader).toBeGreaterThan(0);
    expect(values.ingestCompletedSeenByPoller).toBe(values.ingestCompletedSeenByLoader);
    const fresh = poller.samples.find((s) => s.name === 'fieldsync_form_last_success_age_seconds' && s.labels.form === p.asset);
    expect(fresh?.value).toBeGreaterThanOrEqual(0);
    expect(fresh?.value).toBeLessThan(300);
  });

  it('a second loader whose metrics port is taken warns and does its work', async () => {
    const second = p.start('loader', { METRICS_PORT: String(ports.loader) });
    await waitFor('the second loader to consume', () => second.output().includes('loader consuming ingest'), 60_000, 200);
    expect(second.output()).toContain(`metrics endpoint off: cannot listen on port ${ports.loader}`);
    // The first loader gone, the second loads new webhooks alone.
    const first = p.apps[1]!;
    first.kill('SIGTERM');
    await first.exited;
    p.kobo.createSubmissions(p.hookAsset, 3);
    expect((await p.kobo.flushRestService()).every((d) => d.ok)).toBe(true);
    await waitFor('the webhooks loaded by the second loader', async () => (await p.t.db.prisma.submission.count()) === POLLED + HOOKED + 3, 30_000, 200);
    expect(second.alive()).toBe(true);
  });
});
