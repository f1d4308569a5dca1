/** `pnpm --filter @fieldsync/loader replay [--id N ...]`: re-enqueue dead-lettered batches after a fix. */
import { parseArgs } from 'node:util';
import { loadEnv } from '@fieldsync/config';
import { openDatabase } from '@fieldsync/db';
import { createRedis, createQueues } from '@fieldsync/queues';
import { replayDeadLetters } from '@fieldsync/sync';

const { values } = parseArgs({ options: { id: { type: 'string', multiple: true } } });
const env = loadEnv();
const db = openDatabase(env.DATABASE_URL);
const redis = createRedis(env.REDIS_URL, 'worker');
const queues = createQueues({ redisUrl: env.REDIS_URL, prefix: env.FIELDSYNC_QUEUE_PREFIX }, redis);
try {
  const n = await replayDeadLetters(db, queues, { ids: values.id?.map((v) => BigInt(v)) });
  console.log(`replayed ${n} record(s) into the ingest queue`);
} finally {
  await queues.close();
  await redis.quit();
  await db.close();
}
