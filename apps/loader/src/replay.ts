/** `pnpm --filter @fieldsync/loader replay [--id N ...]`: re-enqueue dead-lettered batches after a fix. */
import { parseArgs } from 'node:util';
import { loadConfig, loadEnv } from '@fieldsync/config';
import { createLogger } from '@fieldsync/logger';
import { connect, replayDeadLetters } from '@fieldsync/sync';

const { values } = parseArgs({ options: { id: { type: 'string', multiple: true } } });
const env = loadEnv();
let config;
try {
  config = loadConfig();
} catch (err) {
  console.error(`replay: ${(err as Error).message}`);
  process.exit(2);
}
const c = await connect(env, createLogger('replay', { level: env.LOG_LEVEL }), { migrate: false, poolSize: 2 });
try {
  // Replayed jobs retry as configured (ingest.attempts, ingest.backoffMs), like any other ingest job.
  const n = await replayDeadLetters(c.db, c.queues, { ids: values.id?.map((v) => BigInt(v)), ingest: config.ingest });
  console.log(`replayed ${n} record(s) and kept webhook bodies into the ingest queue`);
} finally {
  await c.close();
}
