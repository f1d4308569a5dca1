/** `./fieldsync replay [--id N ... | --all]`: re-enqueue dead-lettered batches after a fix. */
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { createLogger } from '@fieldsync/logger';
import { connect, loadCommandSettings, replayDeadLetters } from '@fieldsync/sync';

export const REPLAY_USAGE = `usage: fieldsync replay [--id <deadLetterId> ... | --all]

Puts dead-lettered records (and kept webhook bodies) back into the ingest queue,
with the configured retries (ingest.attempts, ingest.backoffMs). Without --id,
every dead letter not yet replayed (the same as --all).
Exit 0 ok, 1 failure, 2 usage or config error.`;

/** Exit code: 0 ok, 1 failure, 2 usage or config error. */
export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: { id: { type: 'string', multiple: true }, all: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } } }));
  } catch (err) {
    console.error(`replay: ${(err as Error).message}\n${REPLAY_USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(REPLAY_USAGE);
    return 0;
  }
  if (values.all && values.id) {
    console.error(`replay: choose --id or --all, not both\n${REPLAY_USAGE}`);
    return 2;
  }
  const bad = values.id?.find((v) => !/^\d+$/.test(v));
  if (bad !== undefined) {
    console.error(`replay: --id takes a dead letter's numeric id, got "${bad}"`);
    return 2;
  }
  const settings = loadCommandSettings('replay');
  if (!settings) return 2;
  const { env, config } = settings;
  const c = await connect(env, createLogger('replay', { level: env.LOG_LEVEL }), { migrate: false, poolSize: 2 });
  try {
    // Replayed jobs retry as configured (ingest.attempts, ingest.backoffMs), like any other ingest job.
    const n = await replayDeadLetters(c.db, c.queues, { ids: values.id?.map((v) => BigInt(v)), ingest: config.ingest });
    console.log(`replayed ${n} record(s) and kept webhook bodies into the ingest queue`);
    return 0;
  } catch (err) {
    console.error(`replay: ${(err as Error).message}`);
    return 1;
  } finally {
    await c.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) process.exit(await run(process.argv.slice(2)));
