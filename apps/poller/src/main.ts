import { bootstrap, connect, onShutdown, startPollWorker, syncSchedules, type Connections } from '@fieldsync/sync';

const { env, config, log } = bootstrap('poller');
const up: { c?: Connections; worker?: ReturnType<typeof startPollWorker> } = {};
// Before connecting: connect() waits for a database that is down, and SIGTERM then still exits 0 at once.
onShutdown(log, env.SHUTDOWN_TIMEOUT_S, [
  // Polls in flight are aborted; their cursors have not moved, so the next poll re-reads.
  async () => up.worker?.close(),
  async () => up.c?.close(),
]);

const c = (up.c = await connect(env, log, { poolSize: 4 }));
const schedulers = await syncSchedules(c.queues.poll, config);
log.info({ schedulers }, 'job schedulers registered');
up.worker = startPollWorker({ ...c, log, config });
