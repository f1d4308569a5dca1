/**
 * What the processors record when things go wrong, in-process against real
 * PostgreSQL and Redis (the happy path is checked on the real apps in
 * tools/faults/src/metrics.test.ts): poison records and dead letters, outage
 * waits, refused credentials. The metrics are the registry's text, as
 * Prometheus scrapes it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeSubmission } from '@fieldsync/model/testing';
import { openDatabase } from '@fieldsync/db';
import { IngestBatch, PollForm } from '@fieldsync/queues';
import { createLoaderMetrics, createPollerMetrics, createRegistry } from '@fieldsync/metrics';
import { startKoboSimulator, type KoboSimulator } from '@fieldsync/simulator';
import { startPollWorker } from './poll.worker.ts';
import { koboTestConfig, openHarness, testLog, until, type Harness } from './testing.ts';

const sub = (i: number, data: Record<string, unknown> = { i }) => makeSubmission({ formId: 'm', key: String(i), version: `v${i}`, data });
/** The value of one series in the exposition text, 0 when absent. */
async function value(registry: { metrics(): Promise<string> }, series: string): Promise<number> {
  const line = (await registry.metrics()).split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

describe('metrics of failures', () => {
  let h: Harness;
  let kobo: KoboSimulator;
  beforeAll(async () => {
    h = await openHarness('postgresql');
    kobo = await startKoboSimulator({ submissions: 3, seed: 5 });
  });
  afterAll(async () => {
    await h?.close();
    await kobo?.close();
  });

  it('the loader counts loaded records, poison records, dead letters and batches by outcome', async () => {
    const m = createLoaderMetrics(createRegistry(false));
    const loader = h.startLoader({ metrics: m });
    const batch = [1, 2, 3, 4].map((i) => sub(i));
    batch.push(sub(5, { bad: 'nul\u0000here' })); // PostgreSQL's jsonb refuses NUL
    await h.queues.ingest.add(IngestBatch.name, { submissions: batch }, { ...IngestBatch.options, attempts: 2, backoff: { type: 'fixed', delay: 50 } });
    await until(() => h.db.prisma.deadLetter.count(), (n) => n === 1);
    await loader.close();
    const r = m.registry;
    expect(await value(r, 'fieldsync_records_loaded_total{source="kobo",form="m",via="poll"}')).toBe(4);
    // Counted once, when dead-lettered, although both attempts met it.
    expect(await value(r, 'fieldsync_poison_records_total{source="kobo",form="m"}')).toBe(1);
    expect(await value(r, 'fieldsync_dead_letters_total{source="kobo"}')).toBe(1);
    expect(await value(r, 'fieldsync_ingest_batch_duration_seconds_count{outcome="poison"}')).toBe(2);
    expect(await value(r, 'fieldsync_ingest_batch_duration_seconds_count{outcome="ok"}')).toBe(0);
  });

  it('the loader counts the waits for an unreachable database', async () => {
    const m = createLoaderMetrics(createRegistry(false));
    // Nothing listens on port 1: every connection is refused, as when the database is down.
    const down = openDatabase('postgresql://postgres@127.0.0.1:1/none', { poolSize: 1, connectTimeoutMs: 500 });
    const loader = h.startLoader({ db: down, metrics: m, outage: { maxRetries: 100, baseDelayMs: 50, maxDelayMs: 50 } });
    const job = await h.queues.ingest.add(IngestBatch.name, { submissions: [sub(10)] }, IngestBatch.options);
    await until(() => value(m.registry, 'fieldsync_db_outage_waits_total'), (n) => n >= 2, 15_000);
    await loader.close();
    await (await h.queues.ingest.getJob(job.id!))?.remove();
    await down.close().catch(() => {});
    expect(await value(m.registry, 'fieldsync_db_outage_waits_total')).toBeGreaterThanOrEqual(2);
    expect(await value(m.registry, 'fieldsync_ingest_batch_duration_seconds_count{outcome="db_unavailable"}')).toBeGreaterThanOrEqual(2);
    expect(await value(m.registry, 'fieldsync_dead_letters_total{source="kobo"}')).toBe(0);
  });

  it('the poller counts a refused token as a login failure, a 401 and an auth_failed run', async () => {
    const m = createPollerMetrics(createRegistry(false));
    const config = koboTestConfig({ ...kobo, token: 'wrong-token' });
    const worker = startPollWorker({ settings: h.settings, db: h.db, queues: h.queues, log: testLog, config, metrics: m });
    const form = kobo.assetUids[0]!;
    await h.queues.poll.add(PollForm.name, { sourceId: 'kobo', formId: form, mode: 'poll' }, { attempts: 1 });
    await until(() => value(m.registry, 'fieldsync_source_login_failures_total{source="kobo"}'), (n) => n === 1);
    await worker.close();
    const r = m.registry;
    expect(await value(r, `fieldsync_sync_runs_total{source="kobo",form="${form}",mode="poll",outcome="auth_failed"}`)).toBe(1);
    expect(await value(r, 'fieldsync_sync_run_duration_seconds_count{source="kobo",mode="poll",outcome="auth_failed"}')).toBe(1);
    // Refused credentials are not retried: one request, one 401.
    expect(await value(r, 'fieldsync_source_http_requests_total{source="kobo",status="401"}')).toBe(1);
    expect(await value(r, 'fieldsync_source_http_requests_total{source="kobo",status="200"}')).toBe(0);
  });
});
