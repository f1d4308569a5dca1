import { bootstrap, onShutdown, openQueues } from '@fieldsync/sync';
import { createIngressApp } from './app.ts';
import { createMetrics } from './metrics.ts';

const { env, config, log, settings } = bootstrap('ingress');
// Producer connection: with Redis down a webhook gets a 503 at once instead of hanging.
const q = openQueues(settings, 'producer', log);
const admin = env.ADMIN_USER && env.ADMIN_PASSWORD ? { user: env.ADMIN_USER, password: env.ADMIN_PASSWORD } : undefined;
if (!admin) log.warn('ADMIN_USER/ADMIN_PASSWORD not set: the /admin dashboard is off');

const app = createIngressApp({ config, queues: q.queues, redis: q.redis, log, metrics: createMetrics(), bodyLimit: env.INGRESS_BODY_LIMIT, admin });
const server = app.listen(env.INGRESS_PORT, () => {
  log.info({ port: env.INGRESS_PORT, admin: admin ? `/admin` : 'off' }, 'ingress listening');
});

onShutdown(log, env.SHUTDOWN_TIMEOUT_S, [
  // Stop accepting; requests in flight finish (their enqueue completes) before close resolves.
  () => new Promise<void>((resolve) => server.close(() => resolve())),
  () => q.close(),
]);
