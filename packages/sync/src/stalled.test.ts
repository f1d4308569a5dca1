/**
 * Jobs whose loaders keep dying: BullMQ gives up on them inside its stall check
 * (no processor runs, no Worker event). They must still reach the dead letters.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QueueEvents, Worker } from 'bullmq';
import type { Database } from '@fieldsync/db';
import { makeSubmission } from '@fieldsync/model/testing';
import { createRedis, IngestBatch, PollForm, QUEUE } from '@fieldsync/queues';
import { startKoboSimulator } from '@fieldsync/simulator';
import { openHarness, until, koboTestConfig, testLog, type Harness } from './testing.ts';
import { replayDeadLetters } from './replay.ts';
import { startPollWorker } from './poll.worker.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Lock and stall check at 1/20 of the real timing: a job runs for several lock durations. */
const FAST = { lockDurationMs: 1_000, stalledIntervalMs: 250 };

/** Counts `stalled` events on a queue (a live worker's job taken from it would show here). */
function stalledEvents(h: Harness, queue: string) {
  const events = new QueueEvents(queue, { connection: createRedis(h.settings.redisUrl, 'worker'), prefix: h.settings.prefix });
  const ids: string[] = [];
  events.on('stalled', ({ jobId }) => void ids.push(jobId));
  return { ids, ready: events.waitUntilReady(), close: () => events.close() };
}

describe('a job that runs longer than its lock', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await openHarness('postgresql');
  });
  afterAll(() => h?.close());

  it('a batch whose write takes 4 lock durations is not taken from its loader, and runs once', async () => {
    const stalled = stalledEvents(h, QUEUE.ingest);
    await stalled.ready;
    let runs = 0;
    // The batch's write takes 4 s, whichever path stores it: the JSON path (one statement) or a transaction.
    const slowly = async <T,>(write: () => Promise<T>) => (runs++, await sleep(4_000), write());
    const slow: Database = {
      ...h.db,
      sql: { ...h.db.sql, query: (text, params) => slowly(() => h.db.sql.query(text, params)) },
      transaction: (fn) => slowly(() => h.db.transaction(fn)),
    };
    h.startLoader({ ...FAST, db: slow });
    const job = await h.queues.ingest.add(IngestBatch.name, { submissions: [makeSubmission({ formId: 'long', key: '1', data: {} })] }, IngestBatch.options);
    // Only once the slow loader holds the job (either loader could take it first otherwise):
    await until(async () => runs, (n) => n === 1, 5_000);
    h.startLoader(FAST); // a second loader, whose stall check would take the job if its lock lapsed
    await until(() => job.getState(), (s) => s === 'completed', 15_000);
    expect(await job.getState()).toBe('completed');
    expect(runs).toBe(1);
    expect(stalled.ids).toEqual([]);
    expect(await h.db.prisma.submission.count({ where: { formId: 'long' } })).toBe(1);
    await stalled.close();
  });

  it('a poll that takes several lock durations (slow pages) keeps its lock and runs once', async () => {
    const kobo = await startKoboSimulator({ submissions: 300, seed: 5 });
    try {
      const stalled = stalledEvents(h, QUEUE.poll);
      await stalled.ready;
      // Three pages, each answered after 1.5 s: the poll runs ~5 lock durations.
      kobo.failNext({}, { delayMs: 1_500 }, { delayMs: 1_500 }, { delayMs: 1_500 });
      const config = koboTestConfig(kobo, { pageSize: 100 });
      const deps = { settings: h.settings, db: h.db, queues: h.queues, log: testLog, config, ...FAST };
      const pollers = [startPollWorker(deps), startPollWorker(deps)];
      h.startLoader();
      const job = await h.queues.poll.add(PollForm.name, { sourceId: 'kobo', formId: kobo.assetUids[0]!, mode: 'backfill' }, PollForm.options);
      await until(() => job.getState(), (s) => s === 'completed' || s === 'failed', 20_000);
      expect(await job.getState()).toBe('completed');
      expect(stalled.ids).toEqual([]);
      expect(await h.db.prisma.syncRun.count({ where: { mode: 'backfill' } })).toBe(1);
      expect(await until(() => h.db.prisma.submission.count({ where: { formId: kobo.assetUids[0]! } }), (n) => n === 300)).toBe(300);
      await Promise.all(pollers.map((w) => w.close()));
      await stalled.close();
    } finally {
      await kobo.close();
    }
  });
});

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
