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
import { AuthError, createConnector } from '@fieldsync/connectors';
import { bootstrap, connect, runPoll, type PollMode } from '@fieldsync/sync';

export const SYNC_USAGE = `usage: fieldsync sync --source <sourceId> [--form <formId> ...] [--initialize | --sweep]

Runs one poll now (the default), a sweep for edits and deletions (--sweep), or a
backfill from scratch (--initialize) of one source's forms (every form without
--form). Batches go to the ingest queue: a running loader stores them.
Prints one JSON line per form. Exit 0 ok, 1 the run failed, 2 usage or config error.`;

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

  // On a terminal the progress bar speaks; logs only for trouble.
  const { env, config, log } = bootstrap('sync', { level: process.stdout.isTTY ? 'warn' : undefined });
  const source = values.source ? config.sources.find((s) => s.id === values.source) : config.sources[0];
  if (!source) {
    console.error(`sync: no source "${values.source}" in the config (have: ${config.sources.map((s) => s.id).join(', ')})`);
    return 2;
  }
  const mode: PollMode = values.initialize ? 'backfill' : values.sweep ? 'sweep' : 'poll';

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
          connector, formId, mode, configPath: `sources[${config.sources.indexOf(source)}]`,
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
    const message = err instanceof AuthError ? err.at(`sources[${config.sources.indexOf(source)}]`) : (err as Error).message;
    console.error(`${mode} failed: ${message}`);
    exitCode = 1;
  } finally {
    // A one-off run leaves no live ODK session behind (DELETE /v1/sessions/current).
    await connector.close?.();
    await close();
  }
  return exitCode;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) process.exit(await run(process.argv.slice(2)));
