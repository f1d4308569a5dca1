/**
 * The database goes away under a running loader: batches wait (without spending
 * their attempts) and load once it is back — nothing dead-lettered, nothing lost.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import type { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { CanonicalSubmission } from '@fieldsync/model';
import { createTestDatabase, type TestDatabase } from '@fieldsync/db/testing';
import { openDatabase, type Database, type Dialect } from '@fieldsync/db';
import { createQueues, createRedis, IngestBatch, type Queues } from '@fieldsync/queues';
import { testQueueSettings, dropQueuePrefix, drained } from '@fieldsync/queues/testing';
import { createLogger } from '@fieldsync/logger';
import { startIngestWorker } from './ingest.worker.ts';

const log = createLogger('test', { level: process.env.TEST_LOG ?? 'silent' });

/** A TCP hop between the loader and the database that the test can cut and restore. */
class Cable {
  private server?: net.Server;
  private sockets = new Set<net.Socket>();
  port = 0;
  constructor(private readonly target: number) {}
  async plug(): Promise<void> {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.target, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {});
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server!.address() as net.AddressInfo).port;
  }
  async cut(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }
}

const sub = (i: number): CanonicalSubmission => ({
  sourceId: 'kobo', formId: 'outage', key: String(i), version: `v${i}`,
  updatedAt: '2026-11-20T10:00:00.000Z', submittedAt: '2026-11-20T10:00:00.000Z',
  deleted: false, observedAt: '2026-11-20T10:00:00.000Z', data: { i }, via: 'poll',
});

describe.each<[Dialect, number]>([['postgresql', 5432], ['mysql', 3306]])('database outage on %s', (dialect, port) => {
  const settings = testQueueSettings();
  const cable = new Cable(port);
  let t: TestDatabase;
  let viaCable: Database;
  let redis: Redis;
  let queues: Queues;
  let worker: Worker;

  beforeAll(async () => {
    t = await createTestDatabase(dialect);
    await cable.plug();
    const u = new URL(t.url);
    u.port = String(cable.port);
    viaCable = openDatabase(u.toString(), { poolSize: 2, connectTimeoutMs: 1_000 });
    redis = createRedis(settings.redisUrl, 'worker');
    queues = createQueues(settings, redis);
    worker = startIngestWorker({ settings, db: viaCable, queues, log, outage: { maxRetries: 100, baseDelayMs: 100, maxDelayMs: 400 } });
  });
  afterAll(async () => {
    await worker?.close();
    await queues?.close();
    redis?.disconnect();
    await viaCable?.close().catch(() => {});
    await dropQueuePrefix(settings);
    await t?.drop();
  });

  it('a batch that arrives while the database is down waits, keeps its attempts, and loads when it is back', async () => {
    await queues.ingest.add(IngestBatch.name, { submissions: [sub(0)] }, IngestBatch.options);
    await drained(queues.ingest);

    await cable.cut();
    const job = await queues.ingest.add(IngestBatch.name, { submissions: [1, 2, 3].map(sub) }, { ...IngestBatch.options, attempts: 2 });
    // Several connection failures later the job is still waiting its turn, attempts untouched.
    await new Promise((r) => setTimeout(r, 2_500));
    const waiting = (await queues.ingest.getJob(job.id!))!;
    expect(['delayed', 'waiting', 'active']).toContain(await waiting.getState());
    expect(waiting.attemptsMade).toBe(0);
    expect((waiting.data as { outageRetries?: number }).outageRetries).toBeGreaterThan(1);

    await cable.plug();
    await drained(queues.ingest, 30_000);
    expect(await (await queues.ingest.getJob(job.id!))!.getState()).toBe('completed');
    expect(await t.db.prisma.submission.count({ where: { formId: 'outage' } })).toBe(4);
    expect(await t.db.prisma.deadLetter.count()).toBe(0);
  });
});
