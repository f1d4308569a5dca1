import { afterAll, describe, expect, it } from 'vitest';
import { Worker, type Job } from 'bullmq';
import { createQueues, createRedis } from './connection.ts';
import { LazyDataWorker, jobDataText } from './lazy-data.ts';
import { dropQueuePrefix, testQueueSettings } from './testing.ts';

describe('LazyDataWorker on a real Redis', () => {
  const settings = testQueueSettings();
  const redis = createRedis(settings.redisUrl, 'producer');
  const queues = createQueues(settings, redis, () => {});
  afterAll(async () => {
    await queues.close();
    redis.disconnect();
    await dropQueuePrefix(settings);
  });

  /** Runs one job through a worker of the given class; returns what `inspect` saw. */
  async function through<T>(W: typeof Worker, data: unknown, inspect: (job: Job) => Promise<T>): Promise<T> {
    let done!: (v: T | Promise<T>) => void;
    const seen = new Promise<T>((resolve) => (done = resolve));
    const worker = new W(queues.ingest.name, async (job) => done(inspect(job)), { connection: createRedis(settings.redisUrl, 'worker'), prefix: settings.prefix });
    try {
      await queues.ingest.add('lazy', data);
      return await seen;
    } finally {
      await worker.close();
    }
  }

  const data = { submissions: [{ key: '1', data: { q: 'enquête 调查 🌍', n: 1.5, nested: { list: [1, null, true] } } }], runId: '7' };

  it("hands the processor the job's JSON text as Redis holds it, and the same data when read", async () => {
    const seen = await through(LazyDataWorker as unknown as typeof Worker, data, async (job) => {
      const text = jobDataText(job);
      return { text, parsed: job.data as unknown, textAfterRead: jobDataText(job) };
    });
    expect(seen.text).toBe(JSON.stringify(data));
    expect(seen.parsed).toEqual(data);
    expect(seen.textAfterRead).toBe(seen.text); // reading data keeps the text: it still says what the job holds
  });

  it('forgets the text once the data is replaced (updateData), and a plain Worker has none', async () => {
    const replaced = await through(LazyDataWorker as unknown as typeof Worker, data, async (job) => {
      await job.updateData({ submissions: [], runId: '8' });
      return { text: jobDataText(job), data: job.data as unknown };
    });
    expect(replaced).toEqual({ text: undefined, data: { submissions: [], runId: '8' } });
    const plain = await through(Worker, data, async (job) => ({ text: jobDataText(job), data: job.data as unknown }));
    expect(plain).toEqual({ text: undefined, data });
  });
});
