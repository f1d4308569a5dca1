import { Worker, type Job } from 'bullmq';
import type { FieldsyncConfig, SourceConfig } from '@fieldsync/config';
import { createConnector, type SourceConnector } from '@fieldsync/connectors';
import { QUEUE, PollForm, DiscoverForms, createRedis, ingestJobOptions, type PollFormData, type DiscoverFormsData } from '@fieldsync/queues';
import type { Logger } from '@fieldsync/logger';
import type { WorkerDeps } from './ingest.worker.ts';
import { runPoll } from './poll.runner.ts';
import { scheduleDiscoveredForms } from './schedules.ts';

/** Connectors are built once per source and reused by every job. */
export function connectorsFor(config: FieldsyncConfig, log: Logger): Map<string, { source: SourceConfig; connector: SourceConnector }> {
  return new Map(config.sources.map((source) => [source.id, { source, connector: createConnector(source, { logger: log }) }]));
}

/** The poller's worker: consumes `poll` (polls, sweeps, backfills, form discovery). */
export function startPollWorker(deps: WorkerDeps & { config: FieldsyncConfig; concurrency?: number }): Worker {
  const sources = connectorsFor(deps.config, deps.log);
  const lookup = (sourceId: string) => {
    const s = sources.get(sourceId);
    if (!s) throw new Error(`unknown source "${sourceId}" (not in the config any more?)`);
    return s;
  };
  // Closing the worker aborts polls in flight: a source that is down could keep a poll
  // retrying for minutes, and an aborted poll loses nothing (its cursor has not moved).
  const closing = new AbortController();
  const processor = async (job: Job, _token?: string, cancelled?: AbortSignal) => {
    const signal = cancelled ? AbortSignal.any([closing.signal, cancelled]) : closing.signal;
    if (job.name === DiscoverForms.name) {
      const { sourceId } = DiscoverForms.payload.parse(job.data) as DiscoverFormsData;
      const { source, connector } = lookup(sourceId);
      const forms = await connector.listForms(signal);
      await scheduleDiscoveredForms(deps.queues.poll, source, forms);
      return { forms };
    }
    const { sourceId, formId, mode } = PollForm.payload.parse(job.data) as PollFormData;
    const { source, connector } = lookup(sourceId);
    const summary = await runPoll(
      {
        db: deps.db, queues: deps.queues, log: deps.log, batchSize: source.batchSize,
        ingestOptions: ingestJobOptions(deps.config.ingest),
      },
      { connector, formId, mode, signal, onProgress: (p) => void job.updateProgress({ ...p }) },
    );
    return { fetched: summary.fetched, enqueued: summary.enqueued, cursor: summary.cursor };
  };
  const worker = new Worker(QUEUE.poll, processor, {
    connection: createRedis(deps.settings.redisUrl, 'worker'),
    prefix: deps.settings.prefix,
    concurrency: deps.concurrency ?? 2,
    lockDuration: 120_000,
  });
  worker.on('closing', () => closing.abort(new Error('poller shutting down')));
  worker.on('error', (err) => deps.log.error({ err }, 'poll worker error'));
  worker.on('failed', (job, err) => deps.log.warn({ jobId: job?.id, name: job?.name, err: err.message }, 'poll job failed'));
  return worker;
}
