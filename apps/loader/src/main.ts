import { bootstrap, connect, onShutdown, startIngestWorker } from '@fieldsync/sync';

const { env, config, log } = bootstrap('loader');
const c = await connect(env, log, { poolSize: config.ingest.concurrency + 2 });
const worker = startIngestWorker({ ...c, log, concurrency: config.ingest.concurrency });
log.info({ concurrency: config.ingest.concurrency }, 'loader consuming ingest');

onShutdown(log, env.SHUTDOWN_TIMEOUT_S, [
  // Waits for in-flight jobs to finish; after the deadline BullMQ re-delivers them.
  () => worker.close(),
  () => c.close(),
]);
