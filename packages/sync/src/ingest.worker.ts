import { Job, QueueEvents, Worker } from 'bullmq';
import type { Database } from '@fieldsync/db';
import { QUEUE, IngestBatch, createRedis, type Queues, type QueueSettings } from '@fieldsync/queues';
import type { Logger } from '@fieldsync/logger';
import { createIngestProcessor, deadLetter, type IngestDeps } from './ingest.processor.ts';

export interface WorkerDeps {
  settings: QueueSettings;
  db: Database;
  queues: Queues;
  log: Logger;
}

export interface IngestWorkerOptions {
  concurrency?: number;
  outage?: IngestDeps['outage'];
  /** How often a job may lose its loader (crash, kill -9, a missed shutdown deadline) before it is dead-lettered. */
  maxStalledCount?: number;
  /** Lock and stall-check timing; tests shorten them. */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
}

const STALLED = /stalled more than allowable limit/;

/**
 * BullMQ fails a job that stalled too often inside its stall check, without
 * running the processor (so the processor's own dead-lettering never happens)
 * and without a Worker event. The queue's event stream does report it: every
 * loader listens, and the first to claim the job id dead-letters it.
 */
function deadLetterStalledJobs(deps: WorkerDeps): { close(): Promise<void> } {
  const events = new QueueEvents(QUEUE.ingest, { connection: createRedis(deps.settings.redisUrl, 'worker'), prefix: deps.settings.prefix });
  const claims = createRedis(deps.settings.redisUrl, 'worker');
  claims.on('error', () => {}); // reconnects by itself; the events listener logs Redis trouble
  events.on('error', (err) => deps.log.warn({ err: err.message }, 'ingest events error'));
  events.on('failed', ({ jobId, failedReason }) => {
    if (!STALLED.test(failedReason)) return;
    void (async () => {
      const claimKey = `${deps.settings.prefix}:${QUEUE.ingest}:dead-letter-claim:${jobId}`;
      if ((await claims.set(claimKey, '1', 'EX', 7 * 86_400, 'NX')) !== 'OK') return;
      const job = await Job.fromId(deps.queues.ingest, jobId);
      if (job) await deadLetter(deps, job, new Error(`${failedReason}: the loaders processing it kept dying`));
    })().catch((err: unknown) => deps.log.error({ err, jobId }, 'could not dead-letter a stalled job'));
  });
  return {
    async close() {
      await events.close();
      claims.disconnect();
    },
  };
}

/** The loader's worker: consumes `ingest`. */
export function startIngestWorker(deps: WorkerDeps & IngestWorkerOptions): Worker {
  const worker = new Worker(QUEUE.ingest, createIngestProcessor(deps), {
    connection: createRedis(deps.settings.redisUrl, 'worker'),
    prefix: deps.settings.prefix,
    concurrency: deps.concurrency ?? 4,
    lockDuration: deps.lockDurationMs ?? IngestBatch.timeoutMs,
    ...(deps.stalledIntervalMs ? { stalledInterval: deps.stalledIntervalMs } : {}),
    // A job whose loader dies is handed to another loader; only one that keeps
    // killing loaders is given up on (and dead-lettered, below).
    maxStalledCount: deps.maxStalledCount ?? 5,
  });
  const events = deadLetterStalledJobs(deps);
  worker.on('closed', () => void events.close());
  worker.on('error', (err) => deps.log.error({ err }, 'ingest worker error'));
  worker.on('failed', (job, err) => deps.log.warn({ jobId: job?.id, attempts: job?.attemptsMade, err: err.message }, 'ingest job attempt failed'));
  return worker;
}
