import { Redis, type RedisOptions } from 'ioredis';
import { Queue } from 'bullmq';
import { QUEUE, type QueueName } from './catalog.ts';

export interface QueueSettings {
  redisUrl: string;
  /** Redis key prefix for every queue; tests use a unique one per run. */
  prefix: string;
}

/**
 * Workers block on Redis and must never give up a command (BullMQ requires
 * maxRetriesPerRequest null); producers on a request path should fail fast
 * instead, so a webhook gets a 503 rather than hanging while Redis is down.
 */
export function createRedis(url: string, role: 'worker' | 'producer', extra: RedisOptions = {}): Redis {
  const base: RedisOptions =
    role === 'worker'
      ? { maxRetriesPerRequest: null, enableReadyCheck: true }
      : { maxRetriesPerRequest: 2, enableOfflineQueue: false, connectTimeout: 5_000, commandTimeout: 10_000 };
  return new Redis(url, {
    ...base,
    // Reconnect forever with capped exponential backoff: Redis restarts must heal by themselves.
    retryStrategy: (times) => Math.min(200 * 2 ** Math.min(times, 8), 10_000),
    ...extra,
  });
}

export type Queues = Record<keyof typeof QUEUE, Queue> & { close(): Promise<void> };

/**
 * One Queue object per catalog queue, sharing one connection. `onError` gets
 * connection errors (a Queue without a listener prints them raw to stderr).
 */
export function createQueues(settings: QueueSettings, connection: Redis, onError?: (err: Error) => void): Queues {
  const make = (name: QueueName) => {
    const q = new Queue(name, { connection, prefix: settings.prefix });
    if (onError) q.on('error', onError);
    return q;
  };
  const queues = { poll: make(QUEUE.poll), ingest: make(QUEUE.ingest), deadLetter: make(QUEUE.deadLetter), attachments: make(QUEUE.attachments) };
  return {
    ...queues,
    async close() {
      await Promise.all(Object.values(queues).map((q) => q.close()));
    },
  };
}

/** Deletes every key under the prefix: a test run's, or the demo's before it starts again. */
export async function dropQueuePrefix(settings: QueueSettings): Promise<void> {
  const r = new Redis(settings.redisUrl);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${settings.prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}
