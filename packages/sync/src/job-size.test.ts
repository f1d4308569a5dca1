/**
 * Ingest jobs stay bounded in bytes whatever batchSize says: a page of big records
 * (long repeats, long texts) is cut into several jobs, a page of small ones is one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KoboSourceConfig } from '@fieldsync/config';
import { IngestBatch } from '@fieldsync/queues';
import { KoboConnector } from '@fieldsync/connectors';
import { startKoboSimulator, type KoboSimulator } from '@fieldsync/simulator';
import { JOB_TARGET_BYTES, runPoll } from './poll.runner.ts';
import { openHarness, koboTestConfig, testLog as log, type Harness } from './testing.ts';

describe('ingest job size', () => {
  let h: Harness;
  let kobo: KoboSimulator;

  beforeAll(async () => {
    h = await openHarness('postgresql');
    kobo = await startKoboSimulator({ submissions: 0, seed: 5 });
  });
  afterAll(async () => {
    await h?.close();
    await kobo?.close();
  });

  /** Backfills a fresh form of `n` records through the real connector (no loader: the jobs stay queued); its jobs' records. */
  const jobsOf = async (n: number, answer: string) => {
    const asset = kobo.addAsset();
    for (const r of kobo.createSubmissions(asset, n)) kobo.editSubmission(asset, r._id, { notes: answer });
    const connector = new KoboConnector(koboTestConfig(kobo, { forms: [asset], pageSize: 1000 }).sources[0] as KoboSourceConfig, { logger: log });
    await runPoll({ db: h.db, queues: h.queues, log, batchSize: 1000 }, { connector, formId: asset, mode: 'backfill' });
    const jobs = (await h.queues.ingest.getJobs(['waiting'])).filter((j) => j.name === IngestBatch.name && (j.data as { submissions: { formId: string }[] }).submissions[0]!.formId === asset);
    return jobs.map((j) => (j.data as { submissions: { data: unknown }[] }).submissions);
  };

  it('a page of 60 records of 200 kB goes as jobs of at most ~4 MB each; a page of small records as one job', async () => {
    const big = await jobsOf(60, 'é'.repeat(200_000));
    expect(big.reduce((n, j) => n + j.length, 0)).toBe(60);
    expect(big.length).toBeGreaterThanOrEqual(3);
    for (const j of big) expect(JSON.stringify(j.map((s) => s.data)).length).toBeLessThan(JOB_TARGET_BYTES * 1.1);
    const small = await jobsOf(300, 'short');
    expect(small.map((j) => j.length)).toEqual([300]);
  });
});
