import { openDatabase, migrate } from '@fieldsync/db';
import { createRedis, createQueues } from '@fieldsync/queues';
import { bootstrap, onShutdown, startIngestWorker } from '@fieldsync/sync';

const { env, config, log, settings } = bootstrap('loader');

// Safe from many replicas at once: the runner takes the same lock as Prisma's engine.
const m = await migrate(env.DATABASE_URL);
if (m.applied.length) log.info({ applied: m.applied }, 'migrations applied');

const db = openDatabase(env.DATABASE_URL, { poolSize: config.ingest.concurrency + 2 });
const redis = createRedis(settings.redisUrl, 'worker');
const queues = createQueues(settings, redis, (err) => log.warn({ err: err.message }, 'queue error'));
const worker = startIngestWorker({ settings, db, queues, log, concurrency: config.ingest.concurrency });
log.info({ concurrency: config.ingest.concurrency }, 'loader consuming ingest');

onShutdown(log, env.SHUTDOWN_TIMEOUT_S, [
  // Waits for in-flight jobs to finish; after the deadline BullMQ re-delivers them.
  () => worker.close(),
  () => queues.close(),
  () => redis.quit(),
  () => db.close(),
]);
