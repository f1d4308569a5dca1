import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { JobBatcher } from './batching.ts';
import { createQueues, createRedis } from './connection.ts';
import { dropQueuePrefix, onQueueWrites, testQueueSettings } from './testing.ts';

describe('JobBatcher on a real Redis', () => {
  const settings = testQueueSettings();
  const redis = createRedis(settings.redisUrl, 'producer');
  const queues = createQueues(settings, redis, () => {});
  afterEach(async () => {
    await queues.ingest.obliterate({ force: true });
  });
  afterAll(async () => {
    await queues.close();
    redis.disconnect();
    await dropQueuePrefix(settings);
  });

  let undo: (() => void) | undefined;
  afterEach(() => undo?.());
  /** The jobs in each write the batcher makes to Redis (add or addBulk; the writes still go through). */
  const bulkSizes = () => {
    const sizes: number[] = [];
    undo = onQueueWrites(queues.ingest, (n) => sizes.push(n));
    return sizes;
  };

  it('each add resolves with its own stored job; concurrent adds share writes of at most maxBatch', async () => {
    const sizes = bulkSizes();
    const b = new JobBatcher(queues.ingest, { maxBatch: 50 });
    const jobs = await Promise.all(Array.from({ length: 120 }, (_, i) => b.add('t', { i }, { attempts: 3 })));
    expect(sizes).toEqual([50, 50, 20]);
    expect(new Set(jobs.map((j) => j.id)).size).toBe(120);
    const stored = await Promise.all(jobs.map((j) => queues.ingest.getJob(j.id!)));
    expect(stored.map((j) => j?.data)).toEqual(jobs.map((_, i) => ({ i })));
    expect(stored.every((j) => j?.opts.attempts === 3)).toBe(true);
    expect(await queues.ingest.getWaitingCount()).toBe(120);
  });

  it('combines adds of a combinable name and one group into shared jobs (at most maxCombined adds each); others keep their own', async () => {
    const sizes = bulkSizes();
    const combine = { c: (ds: unknown[]) => ({ items: ds.flatMap((d) => (d as { items: number[] }).items) }) };
    const b = new JobBatcher(queues.ingest, { combine, maxCombined: 4, maxCombinedSize: 1000 });
    const share = (group: string, size = 10) => ({ group, size });
    const adds = [
      ...Array.from({ length: 6 }, (_, i) => b.add('c', { items: [i] }, { attempts: 2 }, share('form-a'))),
      b.add('c', { items: [100] }, { attempts: 2 }, share('form-b')),
      b.add('c', { items: [200] }, { attempts: 2 }), // no group: never combined
      b.add('other', { items: [300] }, undefined, share('form-a')), // not combinable
      // Too big to join form-b's job (10 + 995 > 1000): a job of its own, which the next one joins.
      b.add('c', { items: [400] }, { attempts: 2 }, share('form-b', 995)),
      b.add('c', { items: [401] }, { attempts: 2 }, share('form-b', 5)),
    ];
    const jobs = await Promise.all(adds);
    // One addBulk: form-a's six adds as 4 + 2, form-b's 1 and 2, and the two that are never combined.
    expect(sizes).toEqual([6]);
    const stored = await Promise.all(jobs.map((j) => queues.ingest.getJob(j.id!)));
    expect(stored.map((j) => j?.data)).toEqual([
      ...Array(4).fill({ items: [0, 1, 2, 3] }), ...Array(2).fill({ items: [4, 5] }),
      { items: [100] }, { items: [200] }, { items: [300] }, { items: [400, 401] }, { items: [400, 401] },
    ]);
    expect(new Set(jobs.map((j) => j.id)).size).toBe(6);
    expect(stored[0]?.opts.attempts).toBe(2);
    expect(await queues.ingest.getWaitingCount()).toBe(6);
  });

  it('sends a lone job at once and gathers the jobs that arrive while a batch is in flight into the next', async () => {
    const sizes = bulkSizes();
    const b = new JobBatcher(queues.ingest);
    const first = b.add('t', { n: 0 });
    // Let the first batch leave (it goes at the next turn of the event loop), then add while it is in flight.
    await new Promise((r) => setImmediate(r));
    expect(sizes).toEqual([1]);
    const rest = Array.from({ length: 10 }, (_, i) => b.add('t', { n: i + 1 }));
    await Promise.all([first, ...rest]);
    expect(sizes).toEqual([1, 10]);
  });

  it('flush resolves only once every job handed over is stored', async () => {
    const b = new JobBatcher(queues.ingest, { maxBatch: 7 });
    let settled = 0;
    for (let i = 0; i < 30; i++) void b.add('t', { i }).then(() => settled++);
    expect(b.pending).toBe(30);
    await b.flush();
    expect(settled).toBe(30);
    expect(b.pending).toBe(0);
    expect(await queues.ingest.getWaitingCount()).toBe(30);
    await b.flush(); // idle: resolves at once
  });

  it('Redis unreachable: exactly the jobs not stored reject, the stored ones resolve, and it recovers', async () => {
    // A producer connection of its own (no offline queue, like the ingress's), to cut without touching the others.
    const conn = createRedis(settings.redisUrl, 'producer');
    const own = createQueues(settings, conn, () => {});
    try {
      const b = new JobBatcher(own.ingest);
      const stored = await Promise.all([b.add('t', { ok: 1 }), b.add('t', { ok: 2 })]);
      conn.disconnect();
      const lost = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => b.add('t', { lost: i })));
      expect(lost.map((r) => r.status)).toEqual(Array(5).fill('rejected'));
      await b.flush();
      // Read through the healthy connection: the two accepted jobs and nothing else.
      const waiting = await queues.ingest.getWaiting();
      expect(waiting.map((j) => j.id).sort()).toEqual(stored.map((j) => j.id).sort());
      await conn.connect();
      const again = await b.add('t', { ok: 3 });
      expect((await queues.ingest.getJob(again.id!))?.data).toEqual({ ok: 3 });
    } finally {
      await own.close().catch(() => {});
      conn.disconnect();
    }
  });
});
