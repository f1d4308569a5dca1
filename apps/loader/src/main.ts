import { createLoaderMetrics, collectQueueDepth, serveMetrics, type MetricsServer } from '@fieldsync/metrics';
import { DEFAULT_METRICS_PORT, bootstrap, connect, onShutdown, queueList, startIngestWorker, type Connections } from '@fieldsync/sync';
import { anyAttachments, enqueueAttachments, startAttachmentWorker } from '@fieldsync/attachments';

const { env, config, log } = bootstrap('loader');
const up: { c?: Connections; worker?: ReturnType<typeof startIngestWorker>; media?: ReturnType<typeof startAttachmentWorker>; metrics?: MetricsServer | null } = {};
// Before connecting: connect() waits for a database that is down, and SIGTERM then still exits 0 at once.
onShutdown(log, env.SHUTDOWN_TIMEOUT_S, [
  // Waits for in-flight jobs to finish; after the deadline BullMQ re-delivers them.
  async () => up.worker?.close(),
  async () => up.media?.close(),
  async () => up.c?.close(),
  async () => up.metrics?.close(),
]);

// Served from the start: a loader waiting for its database is up (and says so in its metrics), not down.
const metrics = createLoaderMetrics();
up.metrics = await serveMetrics(metrics.registry, { port: env.METRICS_PORT ?? DEFAULT_METRICS_PORT.loader, log });
// Attachments (when configured): queued after each batch commits, copied by their own worker and concurrency.
const media = anyAttachments(config);
const mediaConcurrency = config.attachments?.concurrency ?? 4;
const c = (up.c = await connect(env, log, { poolSize: config.ingest.concurrency + 2 + (media ? mediaConcurrency : 0) }));
collectQueueDepth(metrics.registry, queueList(c.queues), { log });
up.worker = startIngestWorker({
  ...c, log, config, concurrency: config.ingest.concurrency, metrics,
  afterCommit: media ? (stored) => enqueueAttachments({ db: c.db, queues: c.queues, config, log }, stored) : undefined,
});
if (media) up.media = startAttachmentWorker({ ...c, log, config });
log.info({ concurrency: config.ingest.concurrency, attachments: media ? mediaConcurrency : 'off' }, 'loader consuming ingest');
