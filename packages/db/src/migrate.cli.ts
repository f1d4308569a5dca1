/** `./fieldsync migrate`: applies the pending migrations to DATABASE_URL. */
import { pathToFileURL } from 'node:url';
import { migrate } from './migrate.ts';

export const MIGRATE_USAGE = `usage: fieldsync migrate

Applies the pending database migrations to DATABASE_URL (the poller and the
loader also do this at start). Exit 0 ok, 1 failure, 2 usage or config error.`;

/** Exit code: 0 ok, 1 failure, 2 usage or config error. */
export async function run(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(MIGRATE_USAGE);
    return 0;
  }
  if (argv.length) {
    console.error(`migrate: unexpected argument "${argv[0]}"\n${MIGRATE_USAGE}`);
    return 2;
  }
  const url = env.DATABASE_URL;
  if (!url) {
    console.error('migrate: DATABASE_URL is not set');
    return 2;
  }
  try {
    const r = await migrate(url);
    console.log(`migrations: ${r.applied.length} applied${r.applied.length ? ` (${r.applied.join(', ')})` : ''}, ${r.alreadyApplied.length} already applied`);
    return 0;
  } catch (err) {
    console.error(`migrate: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) process.exitCode = await run(process.argv.slice(2));
