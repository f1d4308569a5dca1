import { afterAll, describe, expect, it } from 'vitest';
import { IngestBatch, PollForm, DeadLetter, QUEUE, schedulerId, STALL_CHECK_MS, type JobDef } from './catalog.ts';
import * as catalog from './catalog.ts';
import { createQueues, createRedis } from './connection.ts';
import { testQueueSettings, dropQueuePrefix, drained } from './testing.ts';

describe('job catalog', () => {
  it('every job names a catalog queue and retries with exponential backoff and jitter where it retries', () => {
    for (const j of [IngestBatch, PollForm]) {
      expect(Object.values(QUEUE)).toContain(j.queue);
      expect(j.options.attempts).toBeGreaterThan(1);
      expect(j.options.backoff).toMatchObject({ type: 'exponential' });
      expect((j.options.backoff as { jitter: number }).jitter).toBeGreaterThan(0);
    }
    // Dead letters are kept until an operator deals with them.
    expect(DeadLetter.options).toMatchObject({ removeOnComplete: false, removeOnFail: false });
  });

  it('payload schemas refuse malformed jobs', () => {
    expect(IngestBatch.payload.safeParse({ submissions: [] }).success).toBe(false);
    expect(IngestBatch.payload.safeParse({ submissions: [{ key: 'x' }] }).success).toBe(false);
    expect(PollForm.payload.safeParse({ sourceId: 's', formId: 'f', mode: 'nightly' }).success).toBe(false);
    expect(PollForm.payload.parse({ sourceId: 's', formId: 'f', mode: 'sweep' })).toEqual({ sourceId: 's', formId: 'f', mode: 'sweep' });
  });

  it('job locks are short and agree per queue: a dead worker\'s job runs again within 30 s, however long a job may run', () => {
    const jobs = Object.values(catalog).filter((v): v is JobDef<never> => typeof v === 'object' && v !== null && 'queue' in v && 'lockMs' in v);
    expect(jobs.length).toBeGreaterThanOrEqual(4);
    for (const j of jobs) {
      expect(j.lockMs + STALL_CHECK_MS).toBeLessThanOrEqual(30_000);
      expect(j.lockMs).toBeLessThan(j.timeoutMs);
      // One Worker per queue has one lock duration: every job on that queue must want the same.
      expect(jobs.filter((o) => o.queue === j.queue).map((o) => o.lockMs)).toEqual(jobs.filter((o) => o.queue === j.queue).map(() => j.lockMs));
    }
  });

  it('scheduler ids are stable per (source, form, mode)', () => {
    expect(schedulerId('kobo', 'a', 'poll')).toBe(schedulerId('kobo', 'a', 'poll'));
    expect(schedulerId('kobo', 'a', 'poll')).not.toBe(schedulerId('kobo', 'a', 'sweep'));
  });
});

describe('queues on a real Redis', () => {
  const settings = testQueueSettings();
  const redis = createRedis(settings.redisUrl, 'producer');
  const queues = createQueues(settings, redis);
  afterAll(async () => {
    await queues.close();
    redis.disconnect();
    await dropQueuePrefix(settings);
  });

  it('keeps every queue under the configured prefix, so deployments and test runs never collide', async () => {
    await queues.ingest.add(IngestBatch.name, { submissions: [] });
    const keys = await redis.keys(`${settings.prefix}:*`);
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.some((k) => k.startsWith(`${settings.prefix}:ingest:`))).toBe(true);
    expect(keys.filter((k) => !/^[^:]+:(ingest|poll|dead-letter|attachments):/.test(k))).toEqual([]);
    await expect(drained(queues.ingest, 300)).rejects.toThrow(/did not drain/);
    await queues.ingest.obliterate({ force: true });
    await drained(queues.ingest, 1000);
  });
});
