import { openDatabase, type Database } from '@fieldsync/db';
import { bootstrap, onShutdown, openQueues } from '@fieldsync/sync';
import { createIngressApp, createWebhookBatcher } from './app.ts';
import { createMetrics } from './metrics.ts';
import { drainServer } from './shutdown.ts';

const { env, config, log, settings } = bootstrap('ingress');
// Producer connection: with Redis down a webhook gets a 503 at once instead of hanging.
const q = openQueues(settings, 'producer', log);
const admin = env.ADMIN_USER && env.ADMIN_PASSWORD ? { user: env.ADMIN_USER, password: env.ADMIN_PASSWORD } : undefined;
if (!admin) log.warn('ADMIN_USER/ADMIN_PASSWORD not set: the /admin dashboard is off');
const adminReadonly = env.ADMIN_READONLY_USER && env.ADMIN_READONLY_PASSWORD ? { user: env.ADMIN_READONLY_USER, password: env.ADMIN_READONLY_PASSWORD } : undefined;
// Only the admin routes use the database: a small pool, opened on first use, failing fast while it is down (webhooks never wait on it).
let database: Database | undefined;
const db = () => (database ??= openDatabase(env.DATABASE_URL, { poolSize: 2, connectTimeoutMs: 5_000 }));

let draining = false;
// Webhook jobs go to Redis in addBulk batches (one pipeline per turn of the event loop instead of one write per request).
const ingestBatcher = createWebhookBatcher(q.queues.ingest);
const app = createIngressApp({
  config, queues: q.queues, redis: q.redis, log, metrics: createMetrics(), bodyLimit: env.INGRESS_BODY_LIMIT, admin, adminReadonly, db,
  draining: () => draining, ingestBatcher,
});
const server = app.listen(env.INGRESS_PORT, () => {
  log.info({ port: env.INGRESS_PORT, admin: admin ? `/admin` : 'off' }, 'ingress listening');
});

onShutdown(log, env.SHUTDOWN_TIMEOUT_S, [
  // Stop accepting; every request in flight is answered (its enqueue completes) and keep-alive connections close cleanly.
  () => {
    draining = true;
    return drainServer(server, { idleGraceMs: 1_000, deadlineMs: Math.max(1_000, env.SHUTDOWN_TIMEOUT_S * 750), log });
  },
  // Requests in flight already waited for their jobs; this covers any job still on its way to Redis before the connection closes.
  () => ingestBatcher.flush(),
  () => q.close(),
  async () => database?.close(),
]);
