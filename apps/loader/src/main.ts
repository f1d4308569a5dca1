import { bootstrap, connect, onShutdown, startIngestWorker, type Connections } from '@fieldsync/sync';

const { env, config, log } = bootstrap('loader');
const up: { c?: Connections; worker?: ReturnType<typeof startIngestWorker> } = {};
// Before connecting: connect() waits for a database that is down, and SIGTERM then still exits 0 at once.
onShutdown(log, env.SHUTDOWN_TIMEOUT_S, [
  // Waits for in-flight jobs to finish; after the deadline BullMQ re-delivers them.
  async () => up.worker?.close(),
  async () => up.c?.close(),
]);

const c = (up.c = await connect(env, log, { poolSize: config.ingest.concurrency + 2 }));
up.worker = startIngestWorker({ ...c, log, config, concurrency: config.ingest.concurrency });
log.info({ concurrency: config.ingest.concurrency }, 'loader consuming ingest');
