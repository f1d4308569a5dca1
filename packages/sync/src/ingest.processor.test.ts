import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import type { Worker } from 'bullmq';
import type { CanonicalSubmission } from '@fieldsync/model';
import { createTestDatabase, type TestDatabase } from '@fieldsync/db/testing';
import { createQueues, createRedis, IngestBatch, type Queues } from '@fieldsync/queues';
import { testQueueSettings, dropQueuePrefix } from '@fieldsync/queues/testing';
import { createLogger } from '@fieldsync/logger';
import type { Dialect } from '@fieldsync/db';
import { startIngestWorker } from './ingest.worker.ts';
import { replayDeadLetters } from './replay.ts';

const log = createLogger('test', { level: process.env.TEST_LOG ?? 'silent' });

function nested(depth: number): unknown {
  return depth === 0 ? 'x' : { d: nested(depth - 1) };
}

const sub = (i: number, data: Record<string, unknown> = { _id: i, q: `answer ${i}` }): CanonicalSubmission => ({
  sourceId: 'kobo', formId: 'poison', key: String(i), version: `uuid:${i}`,
  updatedAt: '2026-11-20T10:00:00.000Z', submittedAt: '2026-11-20T10:00:00.000Z',
  deleted: false, observedAt: '2026-11-20T10:00:01.000Z', data, via: 'poll',
});

async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.each<Dialect>(['postgresql', 'mysql'])('ingest worker on %s', (dialect) => {
  const settings = testQueueSettings();
  let t: TestDatabase;
  let redis: Redis;
  let queues: Queues;
  let worker: Worker;

  beforeAll(async () => {
    t = await createTestDatabase(dialect);
    redis = createRedis(settings.redisUrl, 'worker');
    queues = createQueues(settings, redis);
    worker = startIngestWorker({ settings, db: t.db, queues, log, concurrency: 2 });
  });
  afterAll(async () => {
    await worker?.close();
    await queues?.close();
    redis?.disconnect();
    await dropQueuePrefix(settings);
    await t?.drop();
  });

  it('loads the good records of a batch and dead-letters the one the database refuses', async () => {
    // A NUL character PostgreSQL's jsonb refuses, nesting deeper than MariaDB's JSON check allows.
    const poison = sub(5, { _id: 5, bad: 'nul\u0000here', deep: nested(40) });
    const batch = [1, 2, 3, 4, 6, 7, 8, 9, 10].map((i) => sub(i));
    batch.splice(4, 0, poison);
    const job = await queues.ingest.add(IngestBatch.name, { submissions: batch }, { ...IngestBatch.options, attempts: 2, backoff: { type: 'fixed', delay: 50 } });

    const dead = await until(() => t.db.prisma.deadLetter.findMany(), (r) => r.length > 0);
    expect(dead).toHaveLength(1);
    const payload = JSON.parse(dead[0]!.payload) as { submissions: CanonicalSubmission[] };
    expect(payload.submissions.map((s) => s.key)).toEqual(['5']);
    expect(dead[0]!.error).toMatch(/refused by the database/);
    expect(dead[0]!.attempts).toBe(2);

    const rows = await t.db.prisma.submission.findMany({ where: { formId: 'poison' }, orderBy: { id: 'asc' } });
    expect(rows.map((r) => r.key).sort((a, b) => Number(a) - Number(b))).toEqual(['1', '2', '3', '4', '6', '7', '8', '9', '10']);

    const dlq = await queues.deadLetter.getJobs(['waiting', 'completed', 'failed', 'delayed']);
    expect(dlq).toHaveLength(1);
    expect(dlq[0]!.data.error).toMatch(/5:/);
    expect(await (await queues.ingest.getJob(job.id!))!.getState()).toBe('failed');
  });

  it('replays a dead letter after the data is fixed', async () => {
    const [row] = await t.db.prisma.deadLetter.findMany();
    // The operator fixes the record in place, then replays.
    await t.db.prisma.deadLetter.update({ where: { id: row!.id }, data: { payload: JSON.stringify({ submissions: [sub(5)] }) } });
    expect(await replayDeadLetters(t.db, queues)).toBe(1);
    const fixed = await until(() => t.db.prisma.submission.findFirst({ where: { formId: 'poison', key: '5' } }), (r) => !!r);
    expect(fixed?.via).toBe('replay');
    expect((await t.db.prisma.deadLetter.findUniqueOrThrow({ where: { id: row!.id } })).replayedAt).not.toBeNull();
  });
});
