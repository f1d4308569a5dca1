/** `pnpm --filter @fieldsync/loader replay [--id N ...]`: re-enqueue dead-lettered batches after a fix. */
import { parseArgs } from 'node:util';
import { loadEnv } from '@fieldsync/config';
import { createLogger } from '@fieldsync/logger';
import { connect, replayDeadLetters } from '@fieldsync/sync';

const { values } = parseArgs({ options: { id: { type: 'string', multiple: true } } });
const env = loadEnv();
const c = await connect(env, createLogger('replay', { level: env.LOG_LEVEL }), { migrate: false, poolSize: 2 });
try {
  const n = await replayDeadLetters(c.db, c.queues, { ids: values.id?.map((v) => BigInt(v)) });
  console.log(`replayed ${n} record(s) into the ingest queue`);
} finally {
  await c.close();
}
