/**
 * `./fieldsync tables rebuild --source S [--form F]`: refills a source's typed
 * analyst tables (or one form's) from the raw `Submission` rows, e.g. after a
 * form definition arrived late or tables were switched on.
 */
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { openDatabase } from '@fieldsync/db';
import { createLogger } from '@fieldsync/logger';
import { typedTablesFromConfig } from '@fieldsync/tables';
import { loadCommandSettings } from '@fieldsync/sync';

export const TABLES_USAGE = `usage: fieldsync tables rebuild --source <sourceId> [--form <formId>]

Refills the typed analyst tables of a source (or of one form) from the raw
Submission rows. Exit 0 ok, 1 failure, 2 usage or config error.`;

/** Exit code: 0 ok, 1 failure, 2 usage or config error. */
export async function run(argv: string[]): Promise<number> {
  let values, positionals;
  try {
    ({ values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { source: { type: 'string' }, form: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } } }));
  } catch (err) {
    console.error(`tables: ${(err as Error).message}\n${TABLES_USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(TABLES_USAGE);
    return 0;
  }
  if (positionals[0] !== 'rebuild' || positionals.length > 1 || !values.source) {
    console.error(TABLES_USAGE);
    return 2;
  }
  const settings = loadCommandSettings('tables');
  if (!settings) return 2;
  const { env, config } = settings;
  if (!config.sources.some((s) => s.id === values.source)) {
    console.error(`tables: no source "${values.source}" in the config (known: ${config.sources.map((s) => s.id).join(', ')})`);
    return 2;
  }
  const log = createLogger('tables', { level: env.LOG_LEVEL });
  const db = openDatabase(env.DATABASE_URL, { poolSize: 2 });
  try {
    const tables = typedTablesFromConfig(config, db.dialect, log);
    if (!tables) throw new Error('typed tables are switched off (tables.enabled: false in the config)');
    const results = await tables.rebuild(db, values.source, values.form);
    if (results.length === 0) console.log(`no form definitions stored for ${values.source}${values.form ? `/${values.form}` : ''}: nothing rebuilt`);
    for (const r of results) {
      console.log(`${values.source}/${r.formId}: ${r.records} record(s), ${r.childRows} repeat row(s), ${r.unfit} unfit answer(s) in ${(r.ms / 1000).toFixed(1)} s → ${r.tables.join(', ')}`);
    }
    return 0;
  } catch (err) {
    console.error(`tables: ${(err as Error).message}`);
    return 1;
  } finally {
    await db.close();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) process.exitCode = await run(process.argv.slice(2));
