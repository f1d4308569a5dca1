/**
 * Run one poll, sweep or backfill now, in this process, with a progress bar:
 *   ./fieldsync sync --source kobo-eu --form aXyz [--initialize | --sweep]
 * Without --form, every form of the source. Batches go to the ingest queue;
 * loaders store them. `run(argv)` is what `./fieldsync sync` calls; the file
 * still runs on its own (`node --import tsx src/cli.ts …`).
 */
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import cliProgress from 'cli-progress';
import { ingestJobOptions } from '@fieldsync/queues';
import type { SourceConfig } from '@fieldsync/config';
import { AuthError, RestConnector, createConnector, limitConnector, type SourceConnector } from '@fieldsync/connectors';
import { bootstrap, connect, formatPreview, previewForm, runPoll, type PollMode } from '@fieldsync/sync';

export const SYNC_USAGE = `usage: fieldsync sync --source <sourceId> [--form <formId> ...] [--initialize | --sweep]
       fieldsync sync --source <sourceId> --test-mode [--limit 200] [--write]

Runs one poll now (the default), a sweep for edits and deletions (--sweep), or a
backfill from scratch (--initialize) of one source's forms (every form without
--form). Batches go to the ingest queue: a running loader stores them.
Prints one JSON line per form. Exit 0 ok, 1 the run failed, 2 usage or config error.

--test-mode reads at most --limit records (default 200) of each form or endpoint
and prints them with the typed columns inferred for them; it writes nothing
(no database, no queue) unless --write is given, which enqueues just those
records without moving the stored cursor.`;

/** Exit code: 0 ok, 1 the run failed, 2 usage or config error. */
export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        source: { type: 'string' },
        form: { type: 'string', multiple: true },
        initialize: { type: 'boolean', default: false },
        sweep: { type: 'boolean', default: false },
        'test-mode': { type: 'boolean', default: false },
        limit: { type: 'string' },
        write: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    console.error(`sync: ${(err as Error).message}\n${SYNC_USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(SYNC_USAGE);
    return 0;
  }
  if (values.initialize && values.sweep) {
    console.error(`sync: choose one of --initialize or --sweep\n${SYNC_USAGE}`);
    return 2;
  }

  const testMode = values['test-mode'];
  const limit = values.limit === undefined ? 200 : Number(values.limit);
  if (!Number.isSafeInteger(limit) || limit < 1) {
    console.error(`sync: --limit must be a positive whole number, got "${values.limit}"\n${SYNC_USAGE}`);
    return 2;
  }
  if ((values.limit !== undefined || values.write) && !testMode) {
    console.error(`sync: --limit and --write go with --test-mode\n${SYNC_USAGE}`);
    return 2;
  }
  if (testMode && (values.initialize || values.sweep)) {
    console.error(`sync: --test-mode reads records only; it does not go with --initialize or --sweep\n${SYNC_USAGE}`);
    return 2;
  }

  // On a terminal the progress bar speaks; logs only for trouble.
  const { env, config, log } = bootstrap('sync', { level: process.stdout.isTTY ? 'warn' : undefined });
  const source = values.source ? config.sources.find((s) => s.id === values.source) : config.sources[0];
  if (!source) {
    console.error(`sync: no source "${values.source}" in the config (have: ${config.sources.map((s) => s.id).join(', ')})`);
    return 2;
  }
  const mode: PollMode = values.initialize ? 'backfill' : values.sweep ? 'sweep' : 'poll';
  // Where the source sits in the config file: credential errors name the key to fix.
  const configPath = `sources[${config.sources.indexOf(source)}]`;
  if (testMode) return testRun(source, configPath, values.form, limit, values.write, { env, config, log });

  const { db, queues, close } = await connect(env, log, { poolSize: 2 });
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
          connector, formId, mode, configPath,
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
    const message = err instanceof AuthError ? err.at(configPath) : (err as Error).message;
    console.error(`${mode} failed: ${message}`);
    exitCode = 1;
  } finally {
    // A one-off run leaves no live ODK session behind (DELETE /v1/sessions/current).
    await connector.close?.();
    await close();
  }
  return exitCode;
}

/** `--test-mode`: preview (and with --write, enqueue) at most `limit` records per form. */
async function testRun(source: SourceConfig, configPath: string, only: string[] | undefined, limit: number, write: boolean, ctx: Pick<ReturnType<typeof bootstrap>, 'env' | 'config' | 'log'>): Promise<number> {
  const { env, config, log } = ctx;
  // REST: pages no bigger than the limit, so no more than that is fetched.
  const connector: SourceConnector = source.kind === 'rest' ? new RestConnector(source, { logger: log, maxPageSize: limit }) : createConnector(source, { logger: log });
  const conn = write ? await connect(env, log, { poolSize: 2 }) : undefined;
  try {
    for (const formId of only ?? (await connector.listForms())) {
      const preview = await previewForm(connector, formId, limit);
      if (conn) {
        // The limited pull yields no cursor: the next real poll starts where the stored cursor says.
        await runPoll(
          { db: conn.db, queues: conn.queues, log, batchSize: source.batchSize, ingestOptions: ingestJobOptions(config.ingest) },
          { connector: limitConnector(connector, limit), formId, mode: 'poll', configPath },
        );
      }
      console.log(formatPreview(source.id, preview, write));
    }
    return 0;
  } catch (err) {
    console.error(`test mode failed: ${err instanceof AuthError ? err.at(configPath) : (err as Error).message}`);
    return 1;
  } finally {
    await connector.close?.();
    await conn?.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) process.exit(await run(process.argv.slice(2)));
