/** Queue isolation for tests: a unique Redis key prefix per test file, deleted afterwards. */
import { randomBytes } from 'node:crypto';
import type { QueueSettings } from './connection.ts';

export { dropQueuePrefix } from './connection.ts';

export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

export function testQueueSettings(): QueueSettings {
  return { redisUrl: TEST_REDIS_URL, prefix: `fstest-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}` };
}

/** Waits until a queue has nothing waiting, active or delayed (its workers are done). */
export async function drained(queue: import('bullmq').Queue, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'waiting-children');
    if (Object.values(c).every((n) => n === 0)) return;
    if (Date.now() > end) throw new Error(`queue ${queue.name} did not drain: ${JSON.stringify(c)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Runs `before` ahead of each write of jobs to `queue` (add and addBulk, as JobBatcher uses
 * them) with the number of jobs it carries; the write then goes to Redis. Returns the undo.
 */
export function onQueueWrites(queue: import('bullmq').Queue, before: (jobs: number) => unknown): () => void {
  const { add, addBulk } = queue;
  queue.add = (async (...args: Parameters<typeof add>) => {
    await before(1);
    return add.apply(queue, args);
  }) as typeof add;
  queue.addBulk = (async (jobs: Parameters<typeof addBulk>[0]) => {
    await before(jobs.length);
    return addBulk.call(queue, jobs);
  }) as typeof addBulk;
  return () => {
    queue.add = add;
    queue.addBulk = addBulk;
  };
}
