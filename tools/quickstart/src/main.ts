/**
 * `./fieldsync demo`: the whole system on one machine against the built-in
 * simulators. Starts a KoboToolbox, an ODK Central and a Socrata simulator, writes a
 * config for them, runs ingress + poller + loader as real child processes,
 * and narrates what arrives in the database: the backfill by poll, new Kobo
 * submissions by webhook, then edits and deletions found by the sweep.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { openDatabase, dialectOf, recreateDatabase, type Database } from '@fieldsync/db';
import { PollForm, createQueues, createRedis, dropQueuePrefix } from '@fieldsync/queues';
import { startKoboSimulator, startOdkSimulator, startSocrataSimulator, HOUSEHOLD_FORM, PET_DATASET } from '@fieldsync/simulator';

const { values: args } = parseArgs({
  options: {
    'keep-running': { type: 'boolean', default: false },
    kobo: { type: 'string', default: '3000' },
    odk: { type: 'string', default: '1500' },
    /** Pet-license rows on the Socrata simulator: as many as the portal held when the old script took two hours. */
    socrata: { type: 'string', default: '51754' },
  },
});
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const WORK = path.join(ROOT, '.demo');
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/fieldsync_demo';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const PREFIX = 'fieldsync-demo';
const KOBO_COUNT = Number(args.kobo);
const ODK_COUNT = Number(args.odk);
const SOCRATA_COUNT = Number(args.socrata);

const say = (msg: string) => console.log(msg);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freePort(preferred: number): Promise<number> {
  const tryPort = (p: number) =>
    new Promise<number>((resolve, reject) => {
      const s = createServer().once('error', reject).listen(p, '127.0.0.1', () => {
        const port = (s.address() as { port: number }).port;
        s.close(() => resolve(port));
      });
    });
  return tryPort(preferred).catch(() => tryPort(0));
}

/** Set when an app dies: every wait then stops at once instead of timing out. */
let crashed: string | null = null;
/** Set once we (or Ctrl-C, which reaches the apps too) are stopping: app exits are expected then. */
let stopping = false;
const interrupted = new Promise<void>((resolve) => {
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => {
      stopping = true;
      resolve();
    });
});

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 180_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (crashed) throw new Error(crashed);
    if (stopping) throw new Error('interrupted');
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

async function count(db: Database, where: Record<string, unknown>): Promise<number> {
  return db.prisma.submission.count({ where });
}

/**
 * The analyst tables the loader built from the form definitions: one per form and one
 * per repeat, with the data dictionary naming them; then the parent–child JOIN a
 * dashboard would run.
 */
async function showAnalystTables(db: Database): Promise<void> {
  const pg = db.dialect === 'postgresql';
  const rel = (t: string) => (pg ? `fieldsync."${t}"` : `\`${t}\``);
  const id = (c: string) => (pg ? `"${c}"` : `\`${c}\``);
  const tables = await db.sql.query<{ source_id: string; form_id: string; table_name: string; parent_table: string | null }>(
    `SELECT source_id, form_id, table_name, parent_table FROM ${rel('_fieldsync_tables')} ORDER BY source_id, table_name`,
  );
  const rows = [];
  for (const t of tables) {
    const [c] = await db.sql.query<{ n: number | string }>(`SELECT count(*) AS n FROM ${rel(t.table_name)}`);
    const [cols] = await db.sql.query<{ n: number | string }>(`SELECT count(*) AS n FROM ${rel('_fieldsync_columns')} WHERE table_name = ?`, [t.table_name]);
    rows.push({ source: t.source_id, table: pg ? `fieldsync.${t.table_name}` : t.table_name, 'child of': t.parent_table ?? '', columns: Number(cols?.n ?? 0), rows: Number(c?.n ?? 0) });
  }
  say(`5. analyst tables (typed columns from the form definitions; data dictionary in ${pg ? 'fieldsync.' : ''}_fieldsync_columns):`);
  console.table(rows);
  // A parent–child JOIN grouped by a select_one question of the Kobo form, as a dashboard would write it.
  const child = tables.find((t) => t.source_id === 'kobo-demo' && t.parent_table !== null && tables.some((p) => p.table_name === t.parent_table && p.parent_table === null));
  if (!child) return;
  const [pick] = await db.sql.query<{ column_name: string }>(
    `SELECT column_name FROM ${rel('_fieldsync_columns')} WHERE table_name = ? AND field_type = 'select_one' ORDER BY column_name LIMIT 1`,
    [child.parent_table],
  );
  const by = pick ? `h.${id(pick.column_name)}` : `h.${id('_form_version')}`;
  const query = `SELECT ${by} AS ${id(pick?.column_name ?? '_form_version')}, count(DISTINCT h.${id('_key')}) AS submissions, count(m.${id('_key')}) AS ${id(child.table_name.split('__').pop()!)} FROM ${rel(child.parent_table!)} h JOIN ${rel(child.table_name)} m ON m.${id('_parent')} = h.${id('_key')} WHERE NOT h.${id('_deleted')} GROUP BY 1 ORDER BY 2 DESC LIMIT 5`;
  say(`   ${query}`);
  console.table(await db.sql.query(query));
}

async function main() {
  mkdirSync(path.join(WORK, 'logs'), { recursive: true });
  say(`fieldsync demo — database ${DATABASE_URL} (recreated), Redis ${REDIS_URL} (prefix "${PREFIX}")`);
  await recreateDatabase(DATABASE_URL);
  await dropQueuePrefix({ redisUrl: REDIS_URL, prefix: PREFIX }); // every run starts clean

  const secrets = {
    DEMO_KOBO_TOKEN: randomBytes(12).toString('hex'),
    DEMO_HOOK_PASSWORD: randomBytes(12).toString('hex'),
    DEMO_ODK_PASSWORD: randomBytes(12).toString('hex'),
    ADMIN_PASSWORD: randomBytes(6).toString('hex'),
    DEMO_SOCRATA_TOKEN: randomBytes(12).toString('hex'),
  };
  const ingressPort = await freePort(Number(process.env.INGRESS_PORT ?? 3000));
  const webhookUrl = `http://127.0.0.1:${ingressPort}/webhooks/kobo-demo`;

  const kobo = await startKoboSimulator({ token: secrets.DEMO_KOBO_TOKEN, submissions: KOBO_COUNT, seed: 7 });
  const [asset] = kobo.assetUids as [string];
  const odk = await startOdkSimulator({ email: 'demo@example.org', password: secrets.DEMO_ODK_PASSWORD, seed: 7 });
  const odkForm = HOUSEHOLD_FORM.xmlFormId;
  odk.seedSubmissions(odkForm, ODK_COUNT, { stepMs: 60_000 }); // one a minute, up to now
  const socrata = await startSocrataSimulator({ pets: SOCRATA_COUNT, appToken: secrets.DEMO_SOCRATA_TOKEN });
  say(`simulators: KoboToolbox ${kobo.url} (asset ${asset}, ${KOBO_COUNT} submissions), ODK Central ${odk.url} (form ${odkForm}, ${ODK_COUNT}), Socrata ${socrata.url} (dataset ${PET_DATASET}, ${SOCRATA_COUNT} rows)`);

  const configFile = path.join(WORK, 'fieldsync.config.yaml');
  writeFileSync(
    configFile,
    `# Written by the demo; secrets come from the environment.
sources:
  - id: kobo-demo
    kind: kobo
    baseUrl: ${kobo.url}
    token: "\${DEMO_KOBO_TOKEN}"
    forms: [${asset}]
    poll: { every: 20s }
    sweep: { every: 10m }
    webhook:
      basic:
        username: kobo
        password: "\${DEMO_HOOK_PASSWORD}"
  - id: odk-demo
    kind: odk
    baseUrl: ${odk.url}
    projectId: ${odk.projectId}
    forms: "*"
    auth:
      session:
        email: demo@example.org
        password: "\${DEMO_ODK_PASSWORD}"
    poll: { every: 10s }
    sweep: { every: 10m }
  - id: socrata-demo
    kind: socrata
    baseUrl: ${socrata.url}
    datasets: [${PET_DATASET}]
    appToken: "\${DEMO_SOCRATA_TOKEN}"
    pageSize: 10000
    batchSize: 2000
    poll: { every: 1m }
    sweep: { every: 1h }
ingest:
  concurrency: 4
`,
  );

  const env = {
    ...process.env,
    ...secrets,
    DATABASE_URL,
    REDIS_URL,
    FIELDSYNC_CONFIG: configFile,
    FIELDSYNC_QUEUE_PREFIX: PREFIX,
    INGRESS_PORT: String(ingressPort),
    ADMIN_USER: 'admin',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
  };
  const children: { name: string; proc: ChildProcess }[] = [];
  for (const name of ['loader', 'ingress', 'poller']) {
    const log = openSync(path.join(WORK, 'logs', `${name}.log`), 'w');
    const proc = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'apps', name, 'src', 'main.ts')], { cwd: ROOT, env, stdio: ['ignore', log, log] });
    proc.on('exit', (code, signal) => {
      if (!stopping) {
        crashed = `${name} exited unexpectedly (code ${code}, signal ${signal}); see .demo/logs/${name}.log`;
        process.exitCode = 1;
      }
    });
    children.push({ name, proc });
  }
  const stopAll = async () => {
    stopping = true;
    await Promise.all(
      children.map(
        ({ name, proc }) =>
          new Promise<void>((resolve) => {
            if (proc.exitCode !== null) return resolve();
            proc.once('exit', (code) => {
              say(`  ${name} stopped (exit ${code})`);
              resolve();
            });
            proc.kill('SIGTERM');
          }),
      ),
    );
    await kobo.close();
    await odk.close();
    await socrata.close();
  };
  say(`apps: loader, ingress (:${ingressPort}), poller started — logs in .demo/logs/`);

  const db = openDatabase(DATABASE_URL, { poolSize: 2 });
  try {
    await waitFor('ingress', async () => {
      try {
        return (await fetch(`http://127.0.0.1:${ingressPort}/readyz`)).ok;
      } catch {
        return false;
      }
    }, 60_000);

    // 1. Backfill: the poller's schedulers fire at once and page both sources.
    const t0 = Date.now();
    const total = KOBO_COUNT + ODK_COUNT;
    // The Socrata dataset loads alongside; its time is taken as soon as its last row is in.
    let socrataSecs: number | null = null;
    const socrataLoaded = waitFor('the Socrata dataset', async () => {
      if ((await count(db, { sourceId: 'socrata-demo' })) < SOCRATA_COUNT) return false;
      socrataSecs = (Date.now() - t0) / 1000;
      return true;
    }, 600_000);
    socrataLoaded.catch(() => {}); // awaited below; an early failure must not go unhandled meanwhile
    let last = -1;
    await waitFor('the backfill', async () => {
      const n = await count(db, { sourceId: { in: ['kobo-demo', 'odk-demo'] } });
      if (n !== last && process.stdout.isTTY) process.stdout.write(`\r  backfill: ${n} / ${total} rows`);
      last = n;
      return n >= total;
    });
    const secs = (Date.now() - t0) / 1000;
    say(`${process.stdout.isTTY ? '\n' : ''}1. backfill by poll: ${total} rows in ${secs.toFixed(1)} s (${Math.round(total / secs)} rows/s, including the poll interval and start-up)`);
    await socrataLoaded;
    const ss = socrataSecs ?? (Date.now() - t0) / 1000;
    say(`   Socrata: ${SOCRATA_COUNT} rows of ${PET_DATASET} (pet licenses) in ${ss.toFixed(1)} s, typed table included — the script it replaces took about two hours (7,200 s)`);

    // 2. Webhooks: new Kobo submissions POSTed by the simulated REST Service.
    kobo.setRestService({ url: webhookUrl, auth: { username: 'kobo', password: secrets.DEMO_HOOK_PASSWORD }, retryDelaysMs: [1000, 2000, 4000, 8000] });
    const t1 = Date.now();
    kobo.createSubmissions(asset, 25);
    const results = await kobo.flushRestService();
    await waitFor('webhook submissions', async () => (await count(db, { via: 'webhook' })) >= 25);
    say(`2. webhooks: ${results.filter((r) => r.ok).length}/25 REST Service POSTs accepted (202); all 25 in the table ${Date.now() - t1} ms after creation`);

    // 3. Edits and deletions: Kobo sends no webhook for either; the sweep finds them.
    const recs = kobo.records(asset);
    const edited = recs.slice(0, 3).map((r) => kobo.editSubmission(asset, r._id));
    const deleted = recs.slice(3, 5).map((r) => r._id);
    for (const id of deleted) kobo.deleteSubmission(asset, id);
    const odkEdited = odk.submissionIds(odkForm)[0]!;
    const odkVersion = odk.editSubmission(odkForm, odkEdited, { notes: 'corrected by the demo' });
    // What an operator would do to sweep now instead of waiting for the schedule.
    const redis = createRedis(REDIS_URL, 'producer');
    const queues = createQueues({ redisUrl: REDIS_URL, prefix: PREFIX }, redis);
    await queues.poll.add(PollForm.name, { sourceId: 'kobo-demo', formId: asset, mode: 'sweep' }, PollForm.options);
    await queues.close();
    redis.disconnect();
    await waitFor('the sweep', async () => {
      const gone = await count(db, { sourceId: 'kobo-demo', deleted: true });
      const edits = await db.prisma.submission.count({ where: { sourceId: 'kobo-demo', version: { in: edited.map((e) => String(e['meta/instanceID'])) } } });
      return gone === deleted.length && edits === edited.length;
    });
    say(`3. sweep: ${edited.length} Kobo edits re-fetched, ${deleted.length} deletions marked deleted (rows kept, deleted = true)`);
    const t2 = Date.now();
    await waitFor('the ODK edit', async () => (await db.prisma.submission.count({ where: { sourceId: 'odk-demo', key: odkEdited, version: odkVersion } })) === 1, 60_000);
    say(`4. ODK Central: an edited submission picked up by the next poll ${((Date.now() - t2) / 1000).toFixed(1)} s later (same key, new version)`);

    await showAnalystTables(db);

    // What is in the database now.
    const byVia = await db.prisma.submission.groupBy({ by: ['sourceId', 'formId', 'via'], _count: { _all: true }, orderBy: [{ sourceId: 'asc' }, { via: 'asc' }] });
    say('\nSubmission rows by source, form and path:');
    console.table(byVia.map((g) => ({ source: g.sourceId, form: g.formId, via: g.via, rows: g._count._all })));
    const runs = await db.prisma.syncRun.groupBy({ by: ['sourceId', 'mode', 'outcome'], _count: { _all: true }, _sum: { fetched: true } });
    say('Sync runs (the import log, table "SyncRun"):');
    console.table(runs.map((r) => ({ source: r.sourceId, mode: r.mode, outcome: r.outcome, runs: r._count._all, fetched: r._sum.fetched })));
    say(`dead letters: ${await db.prisma.deadLetter.count()}`);
    say(`\nStatus page: http://127.0.0.1:${ingressPort}/admin (Bull Board at /admin/queues)  user "admin", password "${secrets.ADMIN_PASSWORD}"`);
    say(
      dialectOf(DATABASE_URL) === 'postgresql'
        ? `Query:  psql ${DATABASE_URL} -c 'select "sourceId", "via", count(*) from "Submission" group by 1, 2'`
        : `Query:  mariadb -h 127.0.0.1 -u root ${new URL(DATABASE_URL).pathname.slice(1)} -e 'select sourceId, via, count(*) from Submission group by 1, 2'`,
    );
    say(`Config: ${path.relative(ROOT, configFile)}   Logs: .demo/logs/`);
  } catch (err) {
    if (stopping && !crashed) {
      say('\ninterrupted');
      process.exitCode = 130;
    } else {
      console.error(`demo failed: ${(err as Error).message} — see .demo/logs/`);
      process.exitCode = 1;
    }
  } finally {
    await db.close();
  }

  if (args['keep-running'] && !process.exitCode) {
    say('\nKeeping everything running; Ctrl-C stops it.');
    await interrupted;
  }
  say('\nstopping (SIGTERM to each app):');
  await stopAll();
  process.exit(process.exitCode ?? 0);
}

if (!['postgresql', 'mysql'].includes(dialectOf(DATABASE_URL))) throw new Error('unsupported DATABASE_URL');
await main();
