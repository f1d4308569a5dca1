/**
 * Run one poll, sweep or backfill now, in this process, with a progress bar:
 *   pnpm --filter @fieldsync/poller sync --source kobo-eu --form aXyz [--initialize | --sweep]
 * Without --form, every form of the source. Batches go to the ingest queue;
 * loaders store them.
 */
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { loadConfig, loadEnv } from '@fieldsync/config';
import { openDatabase, migrate } from '@fieldsync/db';
import { createRedis, createQueues, ingestJobOptions } from '@fieldsync/queues';
import { createConnector } from '@fieldsync/connectors';
import { createLogger } from '@fieldsync/logger';
import { runPoll, type PollMode } from '@fieldsync/sync';

const { values } = parseArgs({
  options: {
    source: { type: 'string' },
    form: { type: 'string', multiple: true },
    initialize: { type: 'boolean', default: false },
    sweep: { type: 'boolean', default: false },
  },
});

function fail(msg: string): never {
  console.error(msg);
  process.exit(2);
}

let env, config;
try {
  env = loadEnv();
  config = loadConfig();
} catch (err) {
  fail((err as Error).message);
}
const source = values.source ? config.sources.find((s) => s.id === values.source) : config.sources[0];
if (!source) fail(`no source "${values.source}" in the config (have: ${config.sources.map((s) => s.id).join(', ')})`);
if (values.initialize && values.sweep) fail('choose one of --initialize or --sweep');
const mode: PollMode = values.initialize ? 'backfill' : values.sweep ? 'sweep' : 'poll';

const log = createLogger('poller-cli', { level: process.stdout.isTTY ? 'warn' : env.LOG_LEVEL });
await migrate(env.DATABASE_URL);
const db = openDatabase(env.DATABASE_URL, { poolSize: 2 });
const redis = createRedis(env.REDIS_URL, 'worker');
const queues = createQueues({ redisUrl: env.REDIS_URL, prefix: env.FIELDSYNC_QUEUE_PREFIX }, redis);
const connector = createConnector(source, { logger: log });
let exitCode = 0;
try {
  const forms = values.form ?? (await connector.listForms());
  for (const formId of forms) {
    const bar = process.stdout.isTTY
      ? new cliProgress.SingleBar({ format: `${mode} ${source.id}/${formId} [{bar}] {value}/{total} records | {enqueued} enqueued | {duration_formatted}` }, cliProgress.Presets.shades_classic)
      : null;
    bar?.start(0, 0, { enqueued: 0 });
    const summary = await runPoll(
      { db, queues, log, batchSize: source.batchSize, ingestOptions: ingestJobOptions(config.ingest) },
      {
        connector, formId, mode,
        onProgress: (p) => {
          if (!bar) return;
          bar.setTotal(p.total ?? Math.max(p.fetched, 1));
          bar.update(p.fetched, { enqueued: p.enqueued });
        },
      },
    );
    bar?.stop();
    console.log(JSON.stringify({ source: source.id, form: formId, mode, fetched: summary.fetched, enqueued: summary.enqueued, cursor: summary.cursor }));
  }
} catch (err) {
  console.error(`${mode} failed: ${(err as Error).message}`);
  exitCode = 1;
} finally {
  await queues.close();
  await redis.quit();
  await db.close();
}
process.exit(exitCode);
