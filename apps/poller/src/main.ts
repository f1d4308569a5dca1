import { bootstrap, connect, onShutdown, startPollWorker, syncSchedules } from '@fieldsync/sync';

const { env, config, log } = bootstrap('poller');
const c = await connect(env, log, { poolSize: 4 });

const schedulers = await syncSchedules(c.queues.poll, config);
log.info({ schedulers }, 'job schedulers registered');
const worker = startPollWorker({ ...c, log, config });

onShutdown(log, env.SHUTDOWN_TIMEOUT_S, [
  // Polls in flight are aborted; their cursors have not moved, so the next poll re-reads.
  () => worker.close(),
  () => c.close(),
]);
