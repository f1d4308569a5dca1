import { z } from 'zod';
import { ConfigError, formatPath } from './load.ts';

/** Infrastructure settings come from plain environment variables. */
export const InfraEnv = z.object({
  DATABASE_URL: z.string().regex(/^(postgres|postgresql|mysql|mariadb):\/\//, 'must start with postgresql://, mysql:// or mariadb://'),
  REDIS_URL: z.string().regex(/^rediss?:\/\//, 'must start with redis:// or rediss://').default('redis://127.0.0.1:6379'),
  /** Redis key prefix for every queue: lets several deployments (or test runs) share a Redis. */
  FIELDSYNC_QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9_.:-]+$/).default('fieldsync'),
  INGRESS_PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  /** Max webhook body. */
  INGRESS_BODY_LIMIT: z.string().default('1mb'),
  /** Loader/poller Prometheus endpoint port (unset: 9464 loader, 9465 poller; 0 = off). The ingress serves /metrics on INGRESS_PORT. */
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  ADMIN_USER: z.string().optional(),
  ADMIN_PASSWORD: z.string().optional(),
  /** An operator account that sees /admin (status page, API, Bull Board) but changes nothing. */
  ADMIN_READONLY_USER: z.string().optional(),
  ADMIN_READONLY_PASSWORD: z.string().optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Seconds a process may take to finish in-flight work after SIGTERM. */
  SHUTDOWN_TIMEOUT_S: z.coerce.number().positive().default(30),
});
export type InfraEnv = z.infer<typeof InfraEnv>;

export function loadEnv(env: NodeJS.ProcessEnv = process.env): InfraEnv {
  // An empty variable (`INGRESS_PORT=` in an env file) means unset, not "" (which coerces to port 0).
  const set = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = InfraEnv.safeParse(set);
  if (!parsed.success) {
    throw new ConfigError(`environment:\n  ${parsed.error.issues.map((i) => `${formatPath(i.path)}: ${i.message}`).join('\n  ')}`);
  }
  return parsed.data;
}
