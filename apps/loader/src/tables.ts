/**
 * `pnpm --filter @fieldsync/loader tables rebuild --source S [--form F]`: refills
 * a source's typed analyst tables (or one form's) from the raw `Submission`
 * rows, e.g. after a form definition arrived late or tables were switched on.
 */
import { parseArgs } from 'node:util';
import { loadConfig, loadEnv } from '@fieldsync/config';
import { openDatabase } from '@fieldsync/db';
import { createLogger } from '@fieldsync/logger';
import { typedTablesFromConfig } from '@fieldsync/tables';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { source: { type: 'string' }, form: { type: 'string' } } });
if (positionals[0] !== 'rebuild' || !values.source) {
  console.error('usage: tables rebuild --source <sourceId> [--form <formId>]');
  process.exit(2);
}
let env, config;
try {
  env = loadEnv();
  config = loadConfig();
} catch (err) {
  console.error(`tables: ${(err as Error).message}`);
  process.exit(2);
}
if (!config.sources.some((s) => s.id === values.source)) {
  console.error(`tables: no source "${values.source}" in the config (known: ${config.sources.map((s) => s.id).join(', ')})`);
  process.exit(2);
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
} catch (err) {
  console.error(`tables: ${(err as Error).message}`);
  process.exitCode = 1;
} finally {
  await db.close();
}
