import { loadConfig, loadEnv, type FieldsyncConfig, type InfraEnv } from '@fieldsync/config';
import { createLogger, safeUrl, type Logger } from '@fieldsync/logger';
import type { QueueSettings } from '@fieldsync/queues';

export interface Runtime {
  env: InfraEnv;
  config: FieldsyncConfig;
  log: Logger;
  settings: QueueSettings;
}

/** What every app does first: env and config validated (errors name the key), a logger. */
export function bootstrap(app: string): Runtime {
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
  const log = createLogger(app, { level: env.LOG_LEVEL });
  log.info({ redis: safeUrl(env.REDIS_URL), database: safeUrl(env.DATABASE_URL), prefix: env.FIELDSYNC_QUEUE_PREFIX, sources: config.sources.map((s) => s.id) }, 'starting');
  return { env, config, log, settings: { redisUrl: env.REDIS_URL, prefix: env.FIELDSYNC_QUEUE_PREFIX } };
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
