import type { Redis } from 'ioredis';
import { loadConfig, loadEnv, type FieldsyncConfig, type InfraEnv } from '@fieldsync/config';
import { createLogger, safeUrl, type Logger } from '@fieldsync/logger';
import { migrate, openDatabase, type Database } from '@fieldsync/db';
import { createQueues, createRedis, type Queues, type QueueSettings } from '@fieldsync/queues';

export interface Runtime {
  env: InfraEnv;
  config: FieldsyncConfig;
  log: Logger;
  settings: QueueSettings;
}

export function queueSettings(env: InfraEnv): QueueSettings {
  return { redisUrl: env.REDIS_URL, prefix: env.FIELDSYNC_QUEUE_PREFIX };
}

/**
 * What every app does first: env and config validated (errors name the key,
 * printed plainly, exit 2), a logger (at `level`, else LOG_LEVEL).
 */
export function bootstrap(app: string, opts: { level?: string } = {}): Runtime {
  let env: InfraEnv;
  let config: FieldsyncConfig;
  try {
    env = loadEnv();
    config = loadConfig();
  } catch (err) {
    // Config errors are for humans: print them plainly and stop.
    console.error(`${app}: ${(err as Error).message}`);
    process.exit(2);
  }
  const log = createLogger(app, { level: opts.level ?? env.LOG_LEVEL });
  log.info({ redis: safeUrl(env.REDIS_URL), database: safeUrl(env.DATABASE_URL), prefix: env.FIELDSYNC_QUEUE_PREFIX, sources: config.sources.map((s) => s.id) }, 'starting');
  return { env, config, log, settings: queueSettings(env) };
}

export interface QueueConnection {
  redis: Redis;
  queues: Queues;
  close(): Promise<void>;
}

/** The catalog's queues on one Redis connection (`producer`: fail fast; `worker`: wait through outages). */
export function openQueues(settings: QueueSettings, role: 'worker' | 'producer', log: Logger): QueueConnection {
  const redis = createRedis(settings.redisUrl, role);
  redis.on('error', (err) => log.warn({ err: err.message }, 'redis connection error'));
  const queues = createQueues(settings, redis, (err) => log.warn({ err: err.message }, 'queue error'));
  return {
    redis,
    queues,
    async close() {
      await queues.close();
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}

export interface Connections extends QueueConnection {
  db: Database;
  settings: QueueSettings;
}

/**
 * The database (migrated first: safe from many replicas at once, the runner
 * takes the same lock as Prisma's engine) and the queues; close() in order.
 */
export async function connect(env: InfraEnv, log: Logger, opts: { poolSize?: number; migrate?: boolean } = {}): Promise<Connections> {
  if (opts.migrate !== false) {
    const m = await migrate(env.DATABASE_URL);
    if (m.applied.length) log.info({ applied: m.applied }, 'migrations applied');
  }
  const settings = queueSettings(env);
  const db = openDatabase(env.DATABASE_URL, { poolSize: opts.poolSize });
  const q = openQueues(settings, 'worker', log);
  return {
    ...q,
    db,
    settings,
    async close() {
      await q.close();
      await db.close();
    },
  };
}

/**
 * Graceful shutdown: on SIGTERM/SIGINT run the closers in order (stop taking
 * work, finish or return in-flight jobs, close connections) and exit 0; if
 * that takes longer than the deadline, exit 1 — BullMQ re-delivers whatever
 * was in flight, so nothing is lost either way.
 */
export function onShutdown(log: Logger, timeoutS: number, closers: (() => Promise<unknown>)[]): void {
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, timeoutS }, 'shutting down');
    const timer = setTimeout(() => {
      log.error({ timeoutS }, 'shutdown deadline passed; exiting with in-flight work returned to the queue');
      process.exit(1);
    }, timeoutS * 1000);
    timer.unref();
    for (const close of closers) {
      try {
        await close();
      } catch (err) {
        log.warn({ err }, 'error while closing');
      }
    }
    log.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}
