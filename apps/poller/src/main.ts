import { createPollerMetrics, collectFreshness, collectQueueDepth, serveMetrics, type MetricsServer } from '@fieldsync/metrics';
import { DEFAULT_METRICS_PORT, bootstrap, connect, lastSuccessfulRuns, onShutdown, queueList, startPollWorker, syncSchedules, type Connections } from '@fieldsync/sync';

const { env, config, log } = bootstrap('poller');
const up: { c?: Connections; worker?: ReturnType<typeof startPollWorker>; metrics?: MetricsServer | null } = {};
// Before connecting: connect() waits for a database that is down, and SIGTERM then still exits 0 at once.
onShutdown(log, env.SHUTDOWN_TIMEOUT_S, [
  // Polls in flight are aborted; their cursors have not moved, so the next poll re-reads.
  async () => up.worker?.close(),
  async () => up.c?.close(),
  async () => up.metrics?.close(),
]);

// Served from the start: a poller waiting for its database is up, not down.
const metrics = createPollerMetrics();
up.metrics = await serveMetrics(metrics.registry, { port: env.METRICS_PORT ?? DEFAULT_METRICS_PORT.poller, log });
const c = (up.c = await connect(env, log, { poolSize: 4 }));
collectQueueDepth(metrics.registry, queueList(c.queues), { log });
collectFreshness(metrics.registry, () => lastSuccessfulRuns(c.db, config), { log });
const schedulers = await syncSchedules(c.queues.poll, config);
log.info({ schedulers }, 'job schedulers registered');
up.worker = startPollWorker({ ...c, log, config, metrics });
