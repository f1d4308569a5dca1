/**
 * Jobs whose loaders keep dying: BullMQ gives up on them inside its stall check
 * (no processor runs, no Worker event). They must still reach the dead letters.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Worker } from 'bullmq';
import { makeSubmission } from '@fieldsync/model/testing';
import { createRedis, IngestBatch, QUEUE } from '@fieldsync/queues';
import { openHarness, until, type Harness } from './testing.ts';
import { replayDeadLetters } from './replay.ts';

describe('a job that stalls past its limit', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await openHarness('postgresql');
  });
  afterAll(() => h?.close());

  it('is dead-lettered once, and replays into the table', async () => {
    const job = await h.queues.ingest.add(IngestBatch.name, { submissions: [makeSubmission({ formId: 'stall', key: '1', data: { x: 1 } })] }, IngestBatch.options);
    // A loader takes the job and dies with it: it holds the lock and never renews it.
    const doomed = new Worker(QUEUE.ingest, null, { connection: createRedis(h.settings.redisUrl, 'worker'), prefix: h.settings.prefix, lockDuration: 300 });
    const taken = await doomed.getNextJob('dead-loader-token');
    expect(taken?.id).toBe(job.id);

    // Two healthy loaders; their stall check finds the orphan (limit 0 here, 5 by default).
    h.startLoader({ maxStalledCount: 0, stalledIntervalMs: 200, lockDurationMs: 1_000 });
    h.startLoader({ maxStalledCount: 0, stalledIntervalMs: 200, lockDurationMs: 1_000 });
    const rows = await until(() => h.db.prisma.deadLetter.findMany(), (r) => r.length > 0, 15_000);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.jobId).toBe(job.id);
    expect(rows[0]!.error).toMatch(/stalled more than allowable limit/);
    expect(await (await h.queues.ingest.getJob(job.id!))!.getState()).toBe('failed');
    await new Promise((r) => setTimeout(r, 500)); // a second loader must not record it again
    expect(await h.db.prisma.deadLetter.count()).toBe(1);
    expect(await h.queues.deadLetter.count()).toBe(1);

    expect(await replayDeadLetters(h.db, h.queues)).toBe(1);
    expect(await until(() => h.db.prisma.submission.count({ where: { formId: 'stall' } }), (n) => n === 1)).toBe(1);
    await doomed.close(true);
  });

  it('a dead letter that only reached the queue (its table row failed) is replayed too', async () => {
    await h.queues.deadLetter.add('dead-letter', {
      queue: 'ingest', jobName: IngestBatch.name, jobId: '999', error: 'database was down',
      attemptsMade: 8, failedAt: new Date().toISOString(),
      data: { submissions: [makeSubmission({ formId: 'queue-only', key: '7', data: { y: 2 } })] },
    });
    expect(await replayDeadLetters(h.db, h.queues)).toBe(1);
    const row = await until(() => h.db.prisma.submission.findFirst({ where: { formId: 'queue-only' } }), (r) => !!r);
    expect(row?.via).toBe('replay');
    expect(await h.queues.deadLetter.count()).toBe(0);
  });
});
