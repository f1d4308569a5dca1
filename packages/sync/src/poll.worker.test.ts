import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { parseConfig, type FieldsyncConfig } from '@fieldsync/config';
import { createTestDatabase, type TestDatabase } from '@fieldsync/db/testing';
import { createQueues, createRedis, schedulerId, type Queues } from '@fieldsync/queues';
import { testQueueSettings, dropQueuePrefix } from '@fieldsync/queues/testing';
import { createLogger } from '@fieldsync/logger';
import { startKoboSimulator, type KoboSimulator } from '@fieldsync/simulator';
import { startIngestWorker } from './ingest.worker.ts';
import { startPollWorker } from './poll.worker.ts';
import { syncSchedules } from './schedules.ts';

const log = createLogger('test', { level: process.env.TEST_LOG ?? 'silent' });

describe('scheduled polls', () => {
  const settings = testQueueSettings();
  let t: TestDatabase;
  let redis: Redis;
  let queues: Queues;
  let workers: Worker[] = [];
  let kobo: KoboSimulator;
  let config: FieldsyncConfig;

  beforeAll(async () => {
    t = await createTestDatabase('postgresql');
    redis = createRedis(settings.redisUrl, 'worker');
    queues = createQueues(settings, redis);
    kobo = await startKoboSimulator({ submissions: 300, assets: [{}, {}], seed: 5 });
    config = parseConfig(
      JSON.stringify({
        sources: [{ id: 'kobo', kind: 'kobo', baseUrl: kobo.url, token: '${K}', forms: kobo.assetUids, poll: { every: '700ms' }, sweep: { cron: '0 3 * * *' } }],
      }),
      'test.json',
      { K: kobo.token },
    );
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.close()));
    await queues?.close();
    redis?.disconnect();
    await kobo?.close();
    await dropQueuePrefix(settings);
    await t?.drop();
  });

  it('registers one poll and one sweep scheduler per form, and removes those no longer configured', async () => {
    await queues.poll.upsertJobScheduler('poll:gone:x', { every: 60_000 }, { name: 'poll-form', data: { sourceId: 'gone', formId: 'x', mode: 'poll' } });
    await syncSchedules(queues.poll, config);
    const ids = (await queues.poll.getJobSchedulers(0, -1)).map((s) => s.key).sort();
    expect(ids).toEqual(kobo.assetUids.flatMap((f) => [schedulerId('kobo', f, 'poll'), schedulerId('kobo', f, 'sweep')]).sort());
  });

  it('the scheduled polls load every form without anyone asking, and pick up new submissions', async () => {
    workers = [startPollWorker({ settings, db: t.db, queues, log, config }), startIngestWorker({ settings, db: t.db, queues, log })];
    const waitRows = async (n: number) => {
      for (let i = 0; i < 300 && (await t.db.prisma.submission.count()) < n; i++) await new Promise((r) => setTimeout(r, 100));
      return t.db.prisma.submission.count();
    };
    expect(await waitRows(600)).toBe(600);
    kobo.createSubmissions(kobo.assetUids[1]!, 7);
    expect(await waitRows(607)).toBe(607);
    const runs = await t.db.prisma.syncRun.findMany({ where: { outcome: 'ok' } });
    expect(new Set(runs.map((r) => r.formId))).toEqual(new Set(kobo.assetUids));
  });
});
