/**
 * The pipeline as tests need it: a throwaway migrated database, a unique
 * queue prefix on the real Redis, and workers started on demand — all torn
 * down by close(), so every test file stands alone.
 */
import type { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { parseConfig, type FieldsyncConfig } from '@fieldsync/config';
import type { Database, Dialect } from '@fieldsync/db';
import { createTestDatabase, type TestDatabase } from '@fieldsync/db/testing';
import { createQueues, createRedis, type Queues, type QueueSettings } from '@fieldsync/queues';
import { testQueueSettings, dropQueuePrefix } from '@fieldsync/queues/testing';
import { createLogger, type Logger } from '@fieldsync/logger';
import { startIngestWorker, type IngestWorkerOptions } from './ingest.worker.ts';
import { startPollWorker } from './poll.worker.ts';

/** Silent unless TEST_LOG=debug (or another level) is set. */
export const testLog: Logger = createLogger('test', { level: process.env.TEST_LOG ?? 'silent' });

export interface Harness {
  t: TestDatabase;
  db: Database;
  settings: QueueSettings;
  redis: Redis;
  queues: Queues;
  log: Logger;
  /** Starts a loader (ingest worker); `db` lets a test put something between it and the database. */
  startLoader(o?: IngestWorkerOptions & { db?: Database }): Worker;
  startPoller(config: FieldsyncConfig): Worker;
  close(): Promise<void>;
}

export async function openHarness(dialect: Dialect = 'postgresql'): Promise<Harness> {
  const settings = testQueueSettings();
  const t = await createTestDatabase(dialect);
  const redis = createRedis(settings.redisUrl, 'worker');
  const queues = createQueues(settings, redis);
  const workers: Worker[] = [];
  const started = (w: Worker) => (workers.push(w), w);
  return {
    t, db: t.db, settings, redis, queues, log: testLog,
    startLoader: (o = {}) => started(startIngestWorker({ concurrency: 2, ...o, settings, db: o.db ?? t.db, queues, log: testLog })),
    startPoller: (config) => started(startPollWorker({ settings, db: t.db, queues, log: testLog, config })),
    async close() {
      await Promise.all(workers.map((w) => w.close()));
      await queues.close();
      redis.disconnect();
      await dropQueuePrefix(settings);
      await t.drop();
    },
  };
}

/** Polls `fn` until `ok` says yes or the time is up; returns the last value either way. */
export async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A config with one Kobo source, `kobo`, on a simulator: all its forms, quick
 * retries. `source` overrides or adds source keys (forms, poll, pageSize, …).
 */
export function koboTestConfig(kobo: { url: string; token: string; assetUids: string[] }, source: Record<string, unknown> = {}): FieldsyncConfig {
  return parseConfig(
    JSON.stringify({
      sources: [{ id: 'kobo', kind: 'kobo', baseUrl: kobo.url, token: '${KOBO_TOKEN}', forms: kobo.assetUids, http: { timeoutMs: 5000, retries: 4, backoffMs: 50, maxBackoffMs: 2000 }, ...source }],
    }),
    'test.json',
    { KOBO_TOKEN: kobo.token },
  );
}
