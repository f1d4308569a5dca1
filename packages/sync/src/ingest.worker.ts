import { Worker } from 'bullmq';
import type { Database } from '@fieldsync/db';
import { QUEUE, IngestBatch, createRedis, type Queues, type QueueSettings } from '@fieldsync/queues';
import type { Logger } from '@fieldsync/logger';
import { createIngestProcessor, type IngestDeps } from './ingest.processor.ts';

export interface WorkerDeps {
  settings: QueueSettings;
  db: Database;
  queues: Queues;
  log: Logger;
}

/** The loader's worker: consumes `ingest`. */
export function startIngestWorker(deps: WorkerDeps & { concurrency?: number; outage?: IngestDeps['outage'] }): Worker {
  const worker = new Worker(QUEUE.ingest, createIngestProcessor(deps), {
    connection: createRedis(deps.settings.redisUrl, 'worker'),
    prefix: deps.settings.prefix,
    concurrency: deps.concurrency ?? 4,
    lockDuration: IngestBatch.timeoutMs,
  });
  worker.on('error', (err) => deps.log.error({ err }, 'ingest worker error'));
  worker.on('failed', (job, err) => deps.log.warn({ jobId: job?.id, attempts: job?.attemptsMade, err: err.message }, 'ingest job attempt failed'));
  return worker;
}

