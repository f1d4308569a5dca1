/**
 * `fieldsync <verb>`: the operator's one command. The bash `./fieldsync` at the
 * repo root installs what is missing and execs this with `node --import tsx`
 * (no pnpm in between: its ELIFECYCLE lines would bury our errors). Verbs that
 * already exist as app CLIs are those apps' `run(argv)` functions, imported
 * only when used. Exit codes: 0 ok, 1 failure, 2 usage or config error.
 */
import { pathToFileURL } from 'node:url';

export const USAGE = `usage: fieldsync <verb> [options]      (fieldsync <verb> --help for its options)

  demo [--keep-running] [--kobo N] [--odk N] [--socrata N]
                     sync simulated Kobo + ODK + Socrata data into local PostgreSQL
  test               the whole test suite (real PostgreSQL, MariaDB, Redis)
  check              validate the config; try every source, the database and Redis
  status             per source and form: last poll/sweep, rows, dead letters, errors
  migrate            apply the database migrations
  start <app>        run ingress, poller or loader in the foreground
  sync --source S [--form F] [--initialize | --sweep]
                     poll, sweep or backfill now
  sync --source S --test-mode [--limit 200] [--write]
                     preview what a sync would load; writes nothing without --write
  replay [--id N ... | --all]
                     re-enqueue dead letters
  tables rebuild --source S [--form F]
                     refill the typed analyst tables from the raw rows
  bench [--n N] [--json FILE] [--quick]
                     throughput, latency and memory next to the database's bulk load

Configuration: FIELDSYNC_CONFIG (the config file), DATABASE_URL, REDIS_URL and
the variables the config file names (e.g. KOBO_TOKEN).`;

const START_USAGE = `usage: fieldsync start ingress|poller|loader

Runs one app in the foreground until SIGTERM/SIGINT (then it finishes in-flight
work within SHUTDOWN_TIMEOUT_S):
  ingress   webhooks and /admin on INGRESS_PORT (default 3000)
  poller    registers the job schedulers, runs polls, sweeps and discoveries
  loader    stores ingest batches; run as many as you like
Exit 2 on a config error.`;

const DEMO_USAGE = `usage: fieldsync demo [--keep-running] [--kobo N] [--odk N] [--socrata N]

Starts built-in KoboToolbox, ODK Central and Socrata simulators, the three apps and
syncs N (default 3000 Kobo, 1500 ODK, 51754 Socrata rows) simulated records into local PostgreSQL
(DATABASE_URL, default postgresql://postgres@127.0.0.1:5432/fieldsync_demo).
--keep-running keeps everything up afterwards. Installs pnpm, the
dependencies and starts local services first if they are missing.`;

const TEST_USAGE = `usage: fieldsync test [turbo options]

Typecheck, lint and every test, against real PostgreSQL, MariaDB and Redis on
loopback (started first if they are down). Extra options go to turbo.`;

const APPS = ['ingress', 'poller', 'loader'] as const;
const wantsHelp = (argv: string[]) => argv.includes('--help') || argv.includes('-h');

function usageError(message: string, usage = USAGE.split('\n')[0]!): number {
  console.error(`fieldsync: ${message}\n${usage}`);
  return 2;
}

/** Runs one verb; the exit code. `start` does not return until the app stops. */
export async function main(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  switch (verb) {
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      if (verb === 'help' && rest[0]) return main([rest[0], '--help']);
      if (verb === undefined) return console.error(USAGE), 2;
      console.log(USAGE);
      return 0;
    case 'demo':
    case 'test':
      if (wantsHelp(rest)) return console.log(verb === 'demo' ? DEMO_USAGE : TEST_USAGE), 0;
      // They need pnpm, turbo and local services: the bash bootstrap runs them.
      return usageError(`"${verb}" runs through ./fieldsync (the bash script at the repo root), which starts the local services first`);
    case 'check': {
      const { CHECK_USAGE, formatLine, runChecks } = await import('./check.ts');
      if (wantsHelp(rest)) return console.log(CHECK_USAGE), 0;
      if (rest.length) return usageError(`check takes no arguments (got "${rest[0]}")`, CHECK_USAGE.split('\n')[0]);
      const report = await runChecks(process.env, (l) => console.log(formatLine(l)));
      return report.exitCode;
    }
    case 'status':
      return (await import('./status.ts')).run(rest);
    case 'migrate':
      return (await import('@fieldsync/db/migrate-cli')).run(rest);
    case 'sync':
      return (await import('@fieldsync/poller/cli')).run(rest);
    case 'replay':
      return (await import('@fieldsync/loader/replay')).run(rest);
    case 'tables':
      return (await import('@fieldsync/loader/tables')).run(rest);
    case 'bench': {
      // A child process: the benchmark starts and stops the apps and simulators itself.
      const { spawnSync } = await import('node:child_process');
      const script = new URL('../../../tools/bench/src/main.ts', import.meta.url);
      return spawnSync(process.execPath, ['--import', 'tsx', script.pathname, ...rest], { stdio: 'inherit' }).status ?? 1;
    }
    case 'start': {
      if (wantsHelp(rest)) return console.log(START_USAGE), 0;
      const app = rest[0] as (typeof APPS)[number] | undefined;
      if (!app || !APPS.includes(app) || rest.length > 1) return usageError(app ? `start: unknown app "${rest.join(' ')}" (one of ${APPS.join(', ')})` : 'start: which app?', START_USAGE.split('\n')[0]);
      // In this process: signals reach the app directly (PID 1 in a container); it exits by itself.
      await import(new URL(`../../${app}/src/main.ts`, import.meta.url).href);
      return -1;
    }
    default:
      return usageError(`unknown verb "${verb}"`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const code = await main(process.argv.slice(2));
  // One-shot verbs exit even if a library left a handle open (stdout to a pipe or file is
  // written synchronously on Linux, so nothing is lost); a started app (-1) keeps running.
  if (code >= 0) process.exit(code);
}
