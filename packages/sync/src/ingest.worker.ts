import { Job, QueueEvents, type Worker } from 'bullmq';
import type { Database } from '@fieldsync/db';
import { QUEUE, IngestBatch, UnparsedWebhook, STALL_CHECK_MS, LazyDataWorker, createRedis, type Queues, type QueueSettings } from '@fieldsync/queues';
import type { Logger } from '@fieldsync/logger';
import { createIngestProcessor, deadLetter, type IngestDeps } from './ingest.processor.ts';
import { createUnparsedWebhookProcessor } from './webhook.processor.ts';
import type { FieldsyncConfig } from '@fieldsync/config';

export interface WorkerDeps {
  settings: QueueSettings;
  db: Database;
  queues: Queues;
  log: Logger;
}

/** Lock and stall-check timing (defaults: the catalog's lockMs, STALL_CHECK_MS); tests shorten them. */
export interface WorkerTiming {
  lockDurationMs?: number;
  stalledIntervalMs?: number;
}

/** BullMQ Worker lock options: renewed every lockDuration/2 by BullMQ itself, checked every stalledInterval. */
export function lockOptions(t: WorkerTiming, lockMs: number): { lockDuration: number; stalledInterval: number } {
  return { lockDuration: t.lockDurationMs ?? lockMs, stalledInterval: t.stalledIntervalMs ?? STALL_CHECK_MS };
}

export interface IngestWorkerOptions extends WorkerTiming {
  /** Lets the loader read kept webhook bodies with the current sources' parsers. */
  config?: FieldsyncConfig;
  concurrency?: number;
  outage?: IngestDeps['outage'];
  /** Typed analyst tables (default: from `config`, when given). */
  tables?: IngestDeps['tables'];
  /** How often a job may lose its loader (crash, kill -9, a missed shutdown deadline) before it is dead-lettered. */
  maxStalledCount?: number;
  /** Prometheus metrics of the loader; absent = not recorded. */
  metrics?: IngestDeps['metrics'];
  /** After each committed batch (attachment jobs). */
  afterCommit?: IngestDeps['afterCommit'];
}

const STALLED = /stalled more than allowable limit/;

/**
 * BullMQ fails a job that stalled too often inside its stall check, without
 * running the processor (so the processor's own dead-lettering never happens)
 * and without a Worker event. The queue's event stream does report it: every
 * loader listens, and the first to claim the job id dead-letters it.
 */
function deadLetterStalledJobs(deps: WorkerDeps & Pick<IngestWorkerOptions, 'metrics'>): { close(): Promise<void> } {
  const eventsConn = createRedis(deps.settings.redisUrl, 'worker');
  // QueueEvents does not listen for its connection's errors: unheard, each reconnect attempt prints "Unhandled error event".
  eventsConn.on('error', () => {});
  const events = new QueueEvents(QUEUE.ingest, { connection: eventsConn, prefix: deps.settings.prefix });
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
  const ingest = createIngestProcessor(deps);
  const unparsed = createUnparsedWebhookProcessor(deps);
  // One queue, two job kinds: batches, and webhook bodies the ingress could not read.
  // Lazy data: a batch's JSON text can go to the database unparsed (createIngestProcessor).
  const worker = new LazyDataWorker(QUEUE.ingest, (job, token) => (job.name === UnparsedWebhook.name ? unparsed(job) : ingest(job, token)), {
    connection: createRedis(deps.settings.redisUrl, 'worker'),
    prefix: deps.settings.prefix,
    concurrency: deps.concurrency ?? 4,
    // A short lock, renewed while the batch runs (an outage wait leaves the
    // active list via moveToDelayed): a killed loader's batches run elsewhere
    // within lockMs + STALL_CHECK_MS instead of after the attempt's timeout.
    ...lockOptions(deps, IngestBatch.lockMs),
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
