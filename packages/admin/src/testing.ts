/**
 * A seeded deployment for admin tests: a Kobo simulator with records, the
 * pipeline harness (throwaway database, unique queue prefix, poller and
 * loader on demand), the schedulers registered, and dead letters that hold
 * good records (as after an outage), so a replay loads them.
 */
import type { FieldsyncConfig } from '@fieldsync/config';
import { recordDeadLetter, type Dialect } from '@fieldsync/db';
import { IngestBatch } from '@fieldsync/queues';
import { openHarness, koboTestConfig, type Harness } from '@fieldsync/sync/testing';
import { syncSchedules } from '@fieldsync/sync';
import { startKoboSimulator, type KoboSimulator } from '@fieldsync/simulator';

export interface AdminFixture {
  h: Harness;
  kobo: KoboSimulator;
  asset: string;
  config: FieldsyncConfig;
  /** Adds a dead letter holding `n` good records of the form (keys dead-<tag>-i); returns its id. */
  deadLetter(tag: string, n?: number): Promise<string>;
  close(): Promise<void>;
}

export async function openAdminFixture(o: { submissions?: number; dialect?: Dialect } = {}): Promise<AdminFixture> {
  const h = await openHarness(o.dialect ?? 'postgresql');
  const kobo = await startKoboSimulator({ submissions: o.submissions ?? 30, seed: 7 });
  const asset = kobo.assetUids[0]!;
  // Cron schedules (an `every` one fires at once): the tests trigger runs themselves, the schedulers only tell the next run.
  const config = koboTestConfig(kobo, { forms: [asset], poll: { cron: '0 3 * * *', tz: 'UTC' }, sweep: { cron: '30 3 * * *', tz: 'UTC' } });
  await syncSchedules(h.queues.poll, config);
  return {
    h, kobo, asset, config,
    async deadLetter(tag, n = 1) {
      const now = new Date().toISOString();
      const submissions = Array.from({ length: n }, (_, i) => ({
        sourceId: 'kobo', formId: asset, key: `dead-${tag}-${i}`, version: `uuid:dead-${tag}-${i}`, updatedAt: now, submittedAt: now,
        deleted: false, observedAt: now, data: { _id: `dead-${tag}-${i}`, note: 'loaded after a replay' }, via: 'webhook',
      }));
      const id = await recordDeadLetter(h.db, {
        queue: 'ingest', jobName: IngestBatch.name, jobId: `lost-${tag}`, sourceId: 'kobo', formId: asset,
        payload: { submissions }, error: 'connect ECONNREFUSED 127.0.0.1:5432 (the database was down for every attempt)', attempts: 8,
      });
      return String(id);
    },
    async close() {
      await h.close();
      await kobo.close();
    },
  };
}
