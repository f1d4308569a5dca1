import type { Redis } from 'ioredis';
import { loadConfig, loadEnv, type FieldsyncConfig, type InfraEnv } from '@fieldsync/config';
import { createLogger, safeUrl, type Logger } from '@fieldsync/logger';
import { migrate, openDatabase, type Database } from '@fieldsync/db';
import { isAccessDenied, isUnavailable } from './db-errors.ts';
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
  surviveDriverRejections(log);
  log.info({ redis: safeUrl(env.REDIS_URL), database: safeUrl(env.DATABASE_URL), prefix: env.FIELDSYNC_QUEUE_PREFIX, sources: config.sources.map((s) => s.id) }, 'starting');
  return { env, config, log, settings: queueSettings(env) };
}

/**
 * The mariadb driver (3.4) leaves a rejected promise that nobody holds when a new
 * connection dies during its post-login setup (its `SET time_zone` fails as
 * ER_WRONG_IANA_TIMEZONE when the socket drops mid-outage), and Node exits on an
 * unhandled rejection. The pool retries that connection itself, so a lost database
 * connection is logged and lived through; anything else still ends the process, as
 * Node's default would.
 */
export function surviveDriverRejections(log: Logger): void {
  process.on('unhandledRejection', (err) => {
    if (isUnavailable(err)) {
      log.warn({ err: (err as Error).message }, 'database connection lost during set-up (driver); the pool retries');
      return;
    }
    log.fatal({ err }, 'unhandled promise rejection');
    process.exit(1);
  });
}

/**
 * Env and config for a one-off command: null (the reason printed plainly, for the
 * command to exit 2) instead of bootstrap's process exit, so a verb can clean up.
 */
export function loadCommandSettings(verb: string): { env: InfraEnv; config: FieldsyncConfig } | null {
  try {
    return { env: loadEnv(), config: loadConfig() };
  } catch (err) {
    console.error(`${verb}: ${(err as Error).message}`);
    return null;
  }
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

/** How a starting process waits for an unreachable database: capped exponential backoff with jitter. */
export interface DatabaseWait {
  baseMs?: number;
  maxMs?: number;
  /** A warn line at the first failure, then at most this often. */
  logEveryMs?: number;
  /** Give up (throw the last error) after this long; default: never. */
  maxWaitMs?: number;
}

/** The database answered and refused us (credentials, database name): waiting cannot help. */
export class DatabaseRefusedError extends Error {
  override name = 'DatabaseRefusedError';
}

/**
 * Runs `attempt` until it succeeds, waiting while the database is unreachable
 * (a restart policy, or an operator starting things in any order, must not
 * need the database first). A refusal (wrong password, no such database) is
 * thrown at once as DatabaseRefusedError; any other error is thrown as is.
 */
export async function waitForDatabase<T>(url: string, log: Logger, attempt: () => Promise<T>, o: DatabaseWait = {}): Promise<T> {
  const baseMs = o.baseMs ?? 1_000;
  const maxMs = o.maxMs ?? 30_000;
  const logEveryMs = o.logEveryMs ?? 15_000;
  const started = Date.now();
  let lastLog = 0;
  for (let n = 1; ; n++) {
    try {
      const out = await attempt();
      if (n > 1) log.info({ database: safeUrl(url), attempts: n, waitedMs: Date.now() - started }, 'database reachable');
      return out;
    } catch (err) {
      if (isAccessDenied(err)) throw new DatabaseRefusedError(`the database at ${safeUrl(url)} refused us: ${(err as Error).message} (check the user, password and database name in DATABASE_URL)`);
      if (!isUnavailable(err) || Date.now() - started >= (o.maxWaitMs ?? Infinity)) throw err;
      const delayMs = Math.round(Math.min(baseMs * 2 ** Math.min(n - 1, 20), maxMs) * (0.5 + Math.random() / 2));
      if (Date.now() - lastLog >= logEveryMs) {
        lastLog = Date.now();
        log.warn({ database: safeUrl(url), attempt: n, waitedMs: Date.now() - started, retryInMs: delayMs, err: (err as Error).message }, 'database unavailable; waiting');
      }
      await new Promise((r) => setTimeout(r, delayMs));
    }
  }
}

/**
 * The database (migrated first: safe from many replicas at once, the runner
 * takes the same lock as Prisma's engine) and the queues; close() in order.
 * Waits for a database that is down (see waitForDatabase); one that refuses
 * our credentials ends the process with exit 2 and a message saying so.
 */
export async function connect(env: InfraEnv, log: Logger, opts: { poolSize?: number; migrate?: boolean; wait?: DatabaseWait } = {}): Promise<Connections> {
  const db = openDatabase(env.DATABASE_URL, { poolSize: opts.poolSize });
  try {
    await waitForDatabase(env.DATABASE_URL, log, async () => {
      if (opts.migrate === false) return void (await db.sql.query('SELECT 1'));
      const m = await migrate(env.DATABASE_URL);
      if (m.applied.length) log.info({ applied: m.applied }, 'migrations applied');
    }, opts.wait);
  } catch (err) {
    await db.close().catch(() => {});
    if (!(err instanceof DatabaseRefusedError)) throw err;
    log.fatal({ err: err.message }, 'database refused the connection');
    process.exit(2);
  }
  const settings = queueSettings(env);
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
