import { openDatabase, migrate } from '@fieldsync/db';
import { createRedis, createQueues } from '@fieldsync/queues';
import { bootstrap, onShutdown, startPollWorker, syncSchedules } from '@fieldsync/sync';

const { env, config, log, settings } = bootstrap('poller');
await migrate(env.DATABASE_URL);
const db = openDatabase(env.DATABASE_URL, { poolSize: 4 });
const redis = createRedis(settings.redisUrl, 'worker');
const queues = createQueues(settings, redis, (err) => log.warn({ err: err.message }, 'queue error'));

const schedulers = await syncSchedules(queues.poll, config);
log.info({ schedulers }, 'job schedulers registered');
const worker = startPollWorker({ settings, db, queues, log, config });

onShutdown(log, env.SHUTDOWN_TIMEOUT_S, [
  // A poll in flight finishes; its cursor moves only after its batches are enqueued.
  () => worker.close(),
  () => queues.close(),
  () => redis.quit(),
  () => db.close(),
]);
