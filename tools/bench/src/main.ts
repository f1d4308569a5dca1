/**
 * `./fieldsync bench`: how close fieldsync runs to what this machine allows.
 * Generates Kobo-like records once with the simulator, then measures in ONE
 * run (so the noise of a shared machine hits limit and figure alike; the
 * ratios are the result):
 *   limits (PostgreSQL COPY, MariaDB LOAD DATA LOCAL INFILE) · backfill end to
 *   end (first, no-op re-delivery, all-newer) with analyst tables off/on · 1/2/4
 *   loaders · ingress vs bare Express · webhook-to-row latency · peak RSS ·
 *   sweep cost. Not a test: it prints a markdown table (and --json rows).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import mariadb from 'mariadb';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { Dialect } from '@fieldsync/db';
import { createEmptyDatabase, createTestDatabase, type TestDatabase } from '@fieldsync/db/testing';
import { freePort, sleep, startApp, stopAll, waitFor, writeConfig, ROOT, type AppProcess } from '@fieldsync/faults/processes';
import { PollForm, createQueues, createRedis, type Queues } from '@fieldsync/queues';
import { dropQueuePrefix, testQueueSettings } from '@fieldsync/queues/testing';
import { startKoboSimulator, type KoboRecord, type KoboSimulator } from '@fieldsync/simulator';
import { topSelf } from './profile.ts';

export const BENCH_USAGE = `usage: fieldsync bench [--n 51754] [--json FILE] [--quick] [--big 500000] [--only LIST] [--repeats 0.3] [--profile DIR] [--profile-tables DIR [--profile-dialect mysql]] [--profile-ingress DIR] [--app-node-options S]

Starts a Kobo simulator and the apps against local PostgreSQL, MariaDB and
Redis, and prints one markdown table: each fieldsync figure next to its limit
(COPY / LOAD DATA / bare Express) measured in the same run, with the ratio.
  --n N         records for the backfills (default 51754; --quick: 10000)
  --json FILE   also write the rows as [{name, value, unit, limit, ratio}]
  --quick       fewer sections, short ingress runs: a sanity run
  --big N       also backfill and sweep N records (e.g. 500000) for the memory ratio
  --only LIST   only these sections (comma-separated): pg, pg-tables, mariadb,
                mariadb-tables, loaders, big, ingress; the limits run when needed
  --repeats F   share of records with a repeat group (default 0.3)
  --profile DIR only a PostgreSQL backfill with node --cpu-prof on poller and loader;
                prints their top functions by self time
  --profile-tables DIR  the same with analyst tables on (--profile-dialect mysql: on MariaDB)
  --profile-ingress DIR only the ingress section, with node --cpu-prof on the ingress
  --app-node-options S  NODE_OPTIONS for the apps only, e.g. "--max-old-space-size=128"
                (a heap cap, as on a small machine)`;

interface Row { name: string; value: number; unit: string; limit: string | null; ratio: number | null }

const { values: args } = parseArgs({
  options: {
    n: { type: 'string' }, json: { type: 'string' }, quick: { type: 'boolean', default: false },
    big: { type: 'string' }, only: { type: 'string' }, repeats: { type: 'string' }, profile: { type: 'string' }, 'profile-tables': { type: 'string' }, 'profile-dialect': { type: 'string' }, 'profile-ingress': { type: 'string' }, 'app-node-options': { type: 'string' }, help: { type: 'boolean', short: 'h', default: false },
  },
});
if (args.help) {
  console.log(BENCH_USAGE);
  process.exit(0);
}
const QUICK = args.quick;
const SECTIONS = ['pg', 'pg-tables', 'mariadb', 'mariadb-tables', 'loaders', 'big', 'ingress'] as const;
const only = args.only?.split(',').map((x) => x.trim()).filter(Boolean);
const bad = only?.filter((x) => !(SECTIONS as readonly string[]).includes(x));
if (bad?.length) {
  console.error(`--only: unknown section(s) ${bad.join(', ')} (known: ${SECTIONS.join(', ')})`);
  process.exit(2);
}
/** Whether a section runs: all by default (--quick skips mariadb-tables), else those named in --only. */
const want = (s: (typeof SECTIONS)[number]) => (only ? only.includes(s) : !(QUICK && s === 'mariadb-tables'));
const N = Number(args.n ?? (QUICK ? 10_000 : 51_754));
const TOKEN = randomBytes(8).toString('hex');
const HOOK = { username: 'kobo', password: randomBytes(8).toString('hex') };
const rows: Row[] = [];
const limits = new Map<string, number>();
const log = (m: string) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}`);

function add(name: string, value: number, unit: string, limit: string | null = null): void {
  const l = limit ? limits.get(limit) : undefined;
  const ratio = l ? Math.round((value / l) * 100) / 100 : null;
  rows.push({ name, value: Math.round(value * 10) / 10, unit, limit, ratio });
  log(`${name}: ${Math.round(value)} ${unit}${ratio !== null ? ` (${ratio} × ${limit})` : ''}`);
}
function setLimit(name: string, value: number, unit: string): void {
  limits.set(name, value);
  rows.push({ name, value: Math.round(value), unit, limit: null, ratio: null });
  log(`${name}: ${Math.round(value)} ${unit}`);
}

/** Peak resident set (VmHWM) of a live process, in MiB. */
function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

// ---------------------------------------------------------------- limits
/** The records as a CSV line each: what both bulk loaders read. */
function* csvLines(recs: KoboRecord[]): Generator<Buffer> {
  const q = (s: string) => `"${s.replace(/"/g, '""')}"`;
  // Buffers, not strings: the mariadb driver writes the chunks as they come.
  for (const r of recs) yield Buffer.from(`kobo,${q(String(r._xform_id_string))},${r._id},${q(String(r['meta/instanceID']))},${q(JSON.stringify(r))}\n`);
}

async function pgCopy(recs: KoboRecord[]): Promise<number> {
  const db = await createEmptyDatabase('postgresql');
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  try {
    // The same unique key as Submission: a plain table, but one that can refuse duplicates.
    await c.query('CREATE TABLE plain (source_id text, form_id text, key text, version text, data jsonb, PRIMARY KEY (source_id, form_id, key))');
    const t0 = performance.now();
    await pipeline(Readable.from(csvLines(recs)), c.query(copyFrom('COPY plain FROM STDIN (FORMAT csv)')));
    return recs.length / ((performance.now() - t0) / 1000);
  } finally {
    await c.end();
    await db.drop();
  }
}

async function mariaLoad(recs: KoboRecord[]): Promise<number> {
  const db = await createEmptyDatabase('mysql');
  const u = new URL(db.url);
  // The driver sends the whole file as one logical packet, which the server caps at
  // max_allowed_packet (16 MiB by default): one LOAD DATA per ~7 MB slice.
  const SLICE = 4000;
  let slice: KoboRecord[] = [];
  const c = await mariadb.createConnection({
    host: u.hostname, port: Number(u.port || 3306), user: decodeURIComponent(u.username || 'root'), database: u.pathname.slice(1),
    permitLocalInfile: true, infileStreamFactory: () => Readable.from(csvLines(slice)), connectTimeout: 10_000,
  });
  try {
    await c.query('CREATE TABLE plain (source_id varchar(64), form_id varchar(191), `key` varchar(191), version varchar(191), data json, PRIMARY KEY (source_id, form_id, `key`)) ENGINE=InnoDB');
    const t0 = performance.now();
    for (let i = 0; i < recs.length; i += SLICE) {
      slice = recs.slice(i, i + SLICE);
      await c.query(`LOAD DATA LOCAL INFILE 'records.csv' INTO TABLE plain CHARACTER SET utf8mb4 FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '"' ESCAPED BY '' LINES TERMINATED BY '\\n' (source_id, form_id, \`key\`, version, data)`);
    }
    return recs.length / ((performance.now() - t0) / 1000);
  } finally {
    await c.end();
    await db.drop();
  }
}

/**
 * A limit is the median of three runs: one bulk load takes a second or two, and on a
 * shared machine single runs of it varied by 1.6× within minutes.
 */
async function median3(name: string, run: () => Promise<number>): Promise<number> {
  const runs: number[] = [];
  for (let i = 0; i < 3; i++) runs.push(await run());
  runs.sort((a, b) => a - b);
  log(`${name} runs: ${runs.map((r) => Math.round(r)).join(', ')} rows/s`);
  return runs[1]!;
}

// ---------------------------------------------------------------- pipeline
interface Stack {
  t: TestDatabase; queues: Queues; close(): Promise<void>; apps: AppProcess[]; env: Record<string, string>; prefix: string;
}

/** A fresh database and queue prefix, a config for the simulator's asset, and the apps started. */
async function openStack(kobo: KoboSimulator, asset: string, o: { dialect: Dialect; tables: boolean; loaders: number; poller: boolean; ingress?: boolean; nodeArgs?: string[] }): Promise<Stack & { ingressUrl: string }> {
  const t = await createTestDatabase(o.dialect);
  const settings = testQueueSettings();
  const redis = createRedis(settings.redisUrl, 'worker');
  const queues = createQueues(settings, redis, () => {});
  const port = await freePort();
  // Schedules far apart: the poller's first poll (the backfill) fires at start; nothing else by schedule.
  const config = writeConfig(`sources:
  - id: kobo
    kind: kobo
    baseUrl: ${kobo.url}
    token: "\${KOBO_TOKEN}"
    forms: [${asset}]
    poll: { every: 1h }
    sweep: { every: 1h }
    http: { timeoutMs: 30000, retries: 8, backoffMs: 200, maxBackoffMs: 2000 }
    webhook:
      basic:
        username: ${HOOK.username}
        password: "\${HOOK_PASSWORD}"
tables: { enabled: ${o.tables} }
`);
  const env = {
    DATABASE_URL: t.url, REDIS_URL: settings.redisUrl, FIELDSYNC_QUEUE_PREFIX: settings.prefix, FIELDSYNC_CONFIG: config,
    ...(args['app-node-options'] ? { NODE_OPTIONS: args['app-node-options'] } : {}), KOBO_TOKEN: TOKEN, HOOK_PASSWORD: HOOK.password, INGRESS_PORT: String(port), LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  };
  const apps: AppProcess[] = [];
  // --cpu-prof is refused in NODE_OPTIONS: profiled apps get it as a node argument.
  const start = (name: 'loader' | 'poller' | 'ingress') => startApp(name, env, o.nodeArgs);
  for (let i = 0; i < o.loaders; i++) apps.push(start('loader'));
  if (o.ingress) apps.push(start('ingress'));
  const ingressUrl = `http://127.0.0.1:${port}`;
  if (o.ingress) await waitFor('ingress', async () => (await fetch(`${ingressUrl}/readyz`).catch(() => null))?.ok ?? false, 60_000, 200);
  // App start-up is not measured: the loaders' (~1 s of CPU each, compiling) would share the
  // cores with the backfill's first seconds. Each counts once its ingest worker is connected.
  if (o.loaders) await loadersConnected(queues, apps, o.loaders);
  if (o.poller) apps.push(start('poller'));
  return {
    t, queues, apps, env, prefix: settings.prefix, ingressUrl,
    async close() {
      await stopAll(apps);
      await queues.close().catch(() => {});
      redis.disconnect();
      await dropQueuePrefix(settings).catch(() => {});
      await t.drop();
    },
  };
}

function failIfDead(s: Pick<Stack, 'apps'>): void {
  const dead = s.apps.find((a) => !a.alive());
  if (dead) throw new Error(`${dead.name} exited:\n${dead.output().split('\n').slice(-20).join('\n')}`);
}

/** Until `n` ingest workers are connected: a loader counts once its start-up is over. */
function loadersConnected(queues: Queues, apps: AppProcess[], n: number): Promise<void> {
  return waitFor('loaders', async () => {
    failIfDead({ apps });
    return (await queues.ingest.getWorkersCount()) >= n;
  }, 60_000, 100);
}

async function idle(s: Stack): Promise<boolean> {
  failIfDead(s);
  // The poll queue always holds the schedulers' next (delayed) runs; ingest retries are delayed too.
  const poll = await s.queues.poll.getJobCounts('waiting', 'active', 'prioritized');
  const ingest = await s.queues.ingest.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
  return [...Object.values(poll), ...Object.values(ingest)].every((n) => n === 0);
}

async function lastLoadedMs(s: Stack): Promise<number> {
  const r = await s.t.db.prisma.submission.aggregate({ _max: { loadedAt: true } });
  return r._max.loadedAt?.getTime() ?? NaN;
}

/** Fails unless the database holds exactly the simulator's records, each at its current version. */
async function expectExact(s: Stack, kobo: KoboSimulator, asset: string): Promise<void> {
  const want = kobo.records(asset);
  const got = await s.t.db.prisma.submission.findMany({ where: { sourceId: 'kobo', formId: asset }, select: { key: true, version: true } });
  const m = new Map(got.map((g) => [g.key, g.version]));
  const wrong = want.filter((r) => m.get(String(r._id)) !== r['meta/instanceID']).length;
  if (got.length !== want.length || wrong) throw new Error(`not exact: ${got.length} rows for ${want.length} records, ${wrong} missing or at the wrong version`);
}

/**
 * CPU seconds per process group, read from /proc every 250 ms while a run goes: the apps by
 * pid (loaders summed), the services by name, and this process (the simulator serving pages, and
 * the bench's own checks every 500 ms).
 * Where the time goes, in the same run as the figure it explains. Linux only: elsewhere empty.
 */
function cpuSampler(apps: AppProcess[]) {
  const hz = 100; // USER_HZ: the unit of /proc/<pid>/stat times on Linux
  const groupOf = new Map<number, string | null>([[process.pid, 'simulator+bench']]);
  for (const a of apps) if (a.child.pid) groupOf.set(a.child.pid, a.name);
  const service = (pid: number): string | null => {
    let cmd: string;
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      return null;
    }
    return /^postgres|\/postgres|mariadbd|mysqld/.test(cmd) ? 'database' : cmd.includes('redis-server') ? 'redis' : null;
  };
  const samples: { at: number; secs: Map<string, number> }[] = [];
  const take = () => {
    const secs = new Map<string, number>();
    let pids: string[];
    try {
      pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
    } catch {
      return;
    }
    for (const d of pids) {
      const pid = Number(d);
      if (!groupOf.has(pid)) groupOf.set(pid, service(pid));
      const g = groupOf.get(pid);
      if (!g) continue;
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        secs.set(g, (secs.get(g) ?? 0) + (Number(f[11]) + Number(f[12])) / hz);
      } catch {
        // gone between the listing and the read
      }
    }
    samples.push({ at: Date.now(), secs });
  };
  take();
  const timer = setInterval(take, 250);
  return {
    stop: () => (clearInterval(timer), take()),
    /** CPU seconds per group between the samples nearest to two instants. */
    between(from: number, to: number): Map<string, number> {
      const near = (t: number) => samples.reduce((b, x) => (Math.abs(x.at - t) < Math.abs(b.at - t) ? x : b), samples[0]!);
      const [a, b] = [near(from), near(to)];
      return new Map([...b.secs].map(([g, v]) => [g, Math.max(0, v - (a.secs.get(g) ?? 0))]));
    },
  };
}

/** Waits for a run started at `since`; returns seconds from its first source request to `end()`. */
async function timeRun(s: Stack, kobo: KoboSimulator, since: number, done: () => Promise<boolean>, end: () => Promise<number>, timeoutMs = Number(process.env.BENCH_TIMEOUT_MS ?? 180_000)): Promise<{ secs: number; requests: number; cpu: Map<string, number> }> {
  const cpu = cpuSampler(s.apps);
  try {
    // Every 500 ms: the end is read from the rows' loadedAt, not from when this check sees it, and a
    // COUNT over the table ten times a second would take CPU from the run it measures. The queues
    // first: a COUNT only once they are idle (over 500,000 rows each one cost the database 60 ms).
    await waitFor('the run', async () => (await idle(s)) && (await done()), timeoutMs, 500);
  } catch (err) {
    const tails = s.apps.map((a) => `--- ${a.name}\n${a.output().split('\n').slice(-15).join('\n')}`).join('\n');
    throw new Error(`${(err as Error).message}; ${kobo.requests.filter((r) => r.at.getTime() >= since).length} source requests (${kobo.requests.filter((r) => r.at.getTime() >= since).slice(0, 12).map((r) => `${r.status} ${r.path}?${new URLSearchParams(r.query)}`).join(', ')}); ${await s.t.db.prisma.submission.count()} rows; ingest ${JSON.stringify(await s.queues.ingest.getJobCounts())} poll ${JSON.stringify(await s.queues.poll.getJobCounts())}\n${tails}`, { cause: err });
  } finally {
    cpu.stop();
  }
  const reqs = kobo.requests.filter((r) => r.at.getTime() >= since);
  const first = reqs[0]?.at.getTime() ?? since;
  const last = await end();
  return { secs: (last - first) / 1000, requests: reqs.length, cpu: cpu.between(first, last) };
}

async function enqueue(s: Stack, asset: string, mode: 'backfill' | 'sweep'): Promise<() => Promise<boolean>> {
  const job = await s.queues.poll.add(PollForm.name, { sourceId: 'kobo', formId: asset, mode }, PollForm.options);
  return async () => {
    const state = await job.getState();
    if (state === 'failed') throw new Error(`${mode} failed: ${(await s.queues.poll.getJob(job.id!))?.failedReason}`);
    return state === 'completed' || state === 'unknown'; // unknown: completed and already removed
  };
}

/**
 * Serializes the form's records in the simulator before a clock starts. The simulator stands
 * in for a remote Kobo server, whose CPU is not this machine's: unwarmed, its JSON.stringify of
 * every record took about a sixth of the CPU of a first load. It still shares the cores to send
 * the pages.
 */
function warm(kobo: KoboSimulator, asset: string): void {
  for (const r of kobo.store.visible(asset)) kobo.store.json(r);
}

/** The CPU split of a run in the log; as table rows (µs per record) where `rows`. */
function reportCpu(name: string, cpu: Map<string, number>, n: number, rows: boolean): void {
  if (cpu.size === 0) return;
  const order = ['poller', 'loader', 'database', 'redis', 'simulator+bench'];
  const total = [...cpu.values()].reduce((a, b) => a + b, 0);
  log(`${name}: CPU ${order.filter((g) => cpu.has(g)).map((g) => `${g} ${cpu.get(g)!.toFixed(2)} s`).join(', ')}; ${((total / n) * 1e6).toFixed(0)} µs a record in all`);
  if (!rows) return;
  for (const g of order) if (cpu.has(g)) add(`${name}: CPU ${g}`, (cpu.get(g)! / n) * 1e6, 'µs/record');
  add(`${name}: CPU all processes`, (total / n) * 1e6, 'µs/record');
}

const count = (s: Stack, asset: string) => s.t.db.prisma.submission.count({ where: { sourceId: 'kobo', formId: asset } });

interface BackfillOpts {
  dialect: Dialect; tables: boolean; loaders: number; label: string; redeliver: boolean; sweep?: boolean; memory?: string; nodeArgs?: string[];
  /** A round of a repeated measure: its rows/s is returned, not reported. */
  round?: boolean;
}

/** One asset's backfill through the real apps: first load, then optionally no-ops, all-newer, sweeps. Returns the first load's rows/s. */
async function backfill(kobo: KoboSimulator, asset: string, o: BackfillOpts): Promise<number> {
  const n = kobo.records(asset).length;
  const limit = o.dialect === 'postgresql' ? 'postgresql copy' : 'mariadb load data';
  const since = Date.now();
  const s = await openStack(kobo, asset, { ...o, poller: true });
  try {
    const first = await timeRun(s, kobo, since, async () => (await count(s, asset)) >= n, () => lastLoadedMs(s));
    await expectExact(s, kobo, asset);
    if (o.round) {
      log(`backfill ${o.label} first load (a round): ${Math.round(n / first.secs)} rows/s, exact`);
      reportCpu(`backfill ${o.label} first load (a round)`, first.cpu, n, false);
    } else {
      add(`backfill ${o.label} first load`, n / first.secs, 'rows/s', limit);
      reportCpu(`backfill ${o.label} first load`, first.cpu, n, o.label === 'postgresql raw' || o.label === 'postgresql tables');
      limits.set(`${o.label} first load`, n / first.secs); // re-deliveries are judged against it
    }
    if (o.redeliver) {
      const t0 = Date.now();
      const noop = await timeRun(s, kobo, t0, await enqueue(s, asset, 'backfill'), async () => Date.now());
      await expectExact(s, kobo, asset);
      add(`backfill ${o.label} re-delivery (no-ops)`, n / noop.secs, 'rows/s', `${o.label} first load`);
      log(`editing all ${n} records in the simulator`);
      for (const r of kobo.records(asset)) kobo.editSubmission(asset, r._id);
      warm(kobo, asset);
      const newest = new Set(kobo.records(asset).map((r) => String(r['meta/instanceID'])));
      const t1 = Date.now();
      const polled = await enqueue(s, asset, 'backfill');
      const newer = await timeRun(s, kobo, t1, async () => {
        if (!(await polled())) return false;
        const got = await s.t.db.prisma.submission.findMany({ where: { sourceId: 'kobo', formId: asset, loadedAt: { gte: new Date(t1) } }, select: { version: true } });
        return got.filter((g) => newest.has(g.version)).length >= n;
      }, () => lastLoadedMs(s));
      await expectExact(s, kobo, asset);
      add(`backfill ${o.label} all-newer versions`, n / newer.secs, 'rows/s', limit);
    }
    const [poller, loader] = [s.apps.find((a) => a.name === 'poller')!, s.apps.find((a) => a.name === 'loader')!];
    const mem = { poller: peakRssMiB(poller.child.pid!), loader: peakRssMiB(loader.child.pid!) };
    if (o.sweep) {
      const t0 = Date.now();
      const quiet = await timeRun(s, kobo, t0, await enqueue(s, asset, 'sweep'), async () => Date.now());
      add(`sweep ${n} records, nothing changed`, quiet.secs, 's');
      add(`sweep ${n} records, nothing changed: source requests`, quiet.requests, 'requests');
      const recs = kobo.records(asset);
      const step = 100;
      for (let i = 0; i < recs.length; i += step) kobo.editSubmission(asset, recs[i]!._id);
      warm(kobo, asset);
      const t1 = Date.now();
      const edited = await timeRun(s, kobo, t1, await enqueue(s, asset, 'sweep'), async () => Date.now());
      await expectExact(s, kobo, asset);
      add(`sweep ${n} records, 1 % edited`, edited.secs, 's');
      add(`sweep ${n} records, 1 % edited: source requests`, edited.requests, 'requests');
    }
    if (o.memory) {
      // VmHWM is the process's lifetime peak: backfill, re-deliveries and sweeps included.
      const after = { poller: peakRssMiB(poller.child.pid!), loader: peakRssMiB(loader.child.pid!) };
      limits.set(`${o.memory} poller`, after.poller);
      limits.set(`${o.memory} loader`, after.loader);
      add(`peak RSS poller, ${n} records (backfill${o.sweep ? ' + sweep' : ''})`, after.poller, 'MiB', o.memory === 'base' ? null : 'base poller');
      add(`peak RSS loader, ${n} records (backfill${o.sweep ? ' + sweep' : ''})`, after.loader, 'MiB', o.memory === 'base' ? null : 'base loader');
      log(`RSS after backfill only: poller ${mem.poller.toFixed(0)} MiB, loader ${mem.loader.toFixed(0)} MiB`);
    }
    const running = s.apps.filter((a) => a.name === 'loader' && a.alive()).length;
    if (running !== o.loaders) throw new Error(`${running} loaders running, expected ${o.loaders}`);
    return n / first.secs;
  } finally {
    await s.close();
    kobo.store.assets.delete(asset);
  }
}

/**
 * 1, 2 and 4 loader processes, in interleaved rounds (1, 2, 4, 1, 2, 4, …): the machine's
 * speed drifts by tens of percent within minutes, which a single run of each would
 * read as scaling. Each count's median round is reported, against the 1-loader median
 * of the same rounds. Every round is checked exact.
 */
async function loaderScaling(kobo: KoboSimulator, asset: () => string): Promise<void> {
  const counts = QUICK ? [1, 2] : [1, 2, 4];
  const rounds = QUICK ? 1 : 3;
  const seen = new Map<number, number[]>(counts.map((c) => [c, []]));
  for (let r = 0; r < rounds; r++) {
    for (const loaders of counts) {
      seen.get(loaders)!.push(await backfill(kobo, asset(), { dialect: 'postgresql', tables: false, loaders, label: `postgresql raw, ${loaders} loader${loaders > 1 ? 's' : ''}`, redeliver: false, round: true }));
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const one = 'postgresql raw, 1 loader (median round)';
  limits.set(one, median(seen.get(1)!));
  for (const loaders of counts) {
    const name = `backfill postgresql raw, ${loaders} loader${loaders > 1 ? 's' : ''}, median of ${rounds} first load${rounds > 1 ? 's' : ''}`;
    add(name, median(seen.get(loaders)!), 'rows/s', loaders === 1 ? 'postgresql copy' : one);
  }
}

// ---------------------------------------------------------------- ingress

async function ingress(kobo: KoboSimulator, dialect: Dialect, profileDir?: string): Promise<void> {
  const hookAsset = kobo.addAsset();
  const [sample] = kobo.createSubmissions(hookAsset, 200).sort((a, b) => Math.abs(JSON.stringify(a).length - 2048) - Math.abs(JSON.stringify(b).length - 2048));
  const body = JSON.stringify(sample);
  const auth = `Basic ${Buffer.from(`${HOOK.username}:${HOOK.password}`).toString('base64')}`;
  const headers = { 'content-type': 'application/json', authorization: auth };
  const duration = QUICK ? 6 : 15;

  const barePort = await freePort();
  const bareFile = path.join(ROOT, 'tools', 'bench', 'src', 'bare-express.ts');
  const bare = spawn(process.execPath, ['--import', 'tsx', bareFile], { cwd: path.join(ROOT, 'tools', 'bench'), env: { ...process.env, PORT: String(barePort) }, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => bare.stdout!.once('data', () => resolve()));
  const nodeArgs = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : undefined;
  const s = await openStack(kobo, 'aNoPolledForm', { dialect, tables: false, loaders: 0, poller: false, ingress: true, nodeArgs });
  try {
    const run = (url: string) => autocannon({ url, method: 'POST', headers, body, connections: 50, duration: duration / 3, timeout: 10 });
    await run(`http://127.0.0.1:${barePort}/hook`).catch(() => {}); // warm-up of the JIT on both
    const warm = await autocannon({ url: `${s.ingressUrl}/webhooks/kobo`, method: 'POST', headers, body, connections: 50, duration: 3 });
    // Three rounds of bare then ingress, duration/3 each: noise from the shared machine hits both alike. Each side's median round counts.
    const bares: autocannon.Result[] = [];
    const ours: autocannon.Result[] = [];
    for (let round = 0; round < 3; round++) {
      bares.push(await run(`http://127.0.0.1:${barePort}/hook`));
      const f = await run(`${s.ingressUrl}/webhooks/kobo`);
      if (f.non2xx || f.errors) throw new Error(`ingress: ${f.non2xx} non-2xx answers, ${f.errors} errors`);
      ours.push(f);
    }
    const median = (rs: autocannon.Result[]) => [...rs].sort((x, y) => x.requests.average - y.requests.average)[1]!;
    log(`bare express rounds: ${bares.map((r) => Math.round(r.requests.average)).join(', ')} req/s; ingress rounds: ${ours.map((r) => Math.round(r.requests.average)).join(', ')} req/s`);
    const b = median(bares);
    const f = median(ours);
    setLimit('bare express req/s', b.requests.average, 'req/s');
    setLimit('bare express p99', b.latency.p99, 'ms');
    add('ingress webhook req/s (auth, validation, enqueue)', f.requests.average, 'req/s', 'bare express req/s');
    add('bare express p50', b.latency.p50, 'ms');
    add('ingress webhook p50', f.latency.p50, 'ms');
    add('ingress webhook p99', f.latency.p99, 'ms', 'bare express p99');
    // Concurrent requests' records share jobs: how many requests one ingest job carried on average.
    const jobs = (await s.queues.ingest.getJobCounts('waiting')).waiting ?? 0;
    const posted = [warm, ...ours].reduce((n, r) => n + r.requests.total, 0);
    if (jobs > 0) add('ingress requests per ingest job', posted / jobs, 'requests');

    // Webhook to row: a fresh record per request at a steady rate, a loader running.
    await s.queues.ingest.obliterate({ force: true });
    s.apps.push(startApp('loader', s.env));
    // Steady state: the loader connected, then 2 s at the same rate (its first batches warm it up) not counted.
    await loadersConnected(s.queues, s.apps, 1);
    const sent = new Map<string, number>();
    let i = 0;
    let counting = false;
    const rate = 200;
    const steady = (duration: number) => autocannon({
      url: `${s.ingressUrl}/webhooks/kobo`, method: 'POST', headers, connections: 10, overallRate: rate, duration,
      requests: [{
        setupRequest: (req) => {
          const id = 900_000_000 + i++;
          const rec = { ...sample, _id: id, 'meta/instanceID': `uuid:bench-${id}`, _uuid: `bench-${id}` };
          if (counting) sent.set(String(id), Date.now());
          return { ...req, body: JSON.stringify(rec) };
        },
      }],
    });
    await steady(2);
    counting = true;
    await steady(QUICK ? 5 : 10);
    const keys = [...sent.keys()];
    await waitFor('webhook rows', async () => (await s.t.db.prisma.submission.count({ where: { via: 'webhook' } })) >= i, 120_000, 200);
    const got = await s.t.db.prisma.submission.findMany({ where: { via: 'webhook', key: { in: keys } }, select: { key: true, loadedAt: true } });
    const lat = got.map((g) => g.loadedAt.getTime() - sent.get(g.key)!).filter(Number.isFinite).sort((a, b) => a - b);
    const pct = (p: number) => lat[Math.min(lat.length - 1, Math.floor((p / 100) * lat.length))]!;
    add(`webhook to row p50 at ${rate} req/s`, pct(50), 'ms');
    add(`webhook to row p99 at ${rate} req/s`, pct(99), 'ms');
  } finally {
    bare.kill('SIGTERM');
    await s.close();
  }
}

// ---------------------------------------------------------------- profile
async function profile(kobo: KoboSimulator, asset: string, dir: string, tables = false, dialect: Dialect = 'postgresql'): Promise<void> {
  const label = `${dialect === 'postgresql' ? 'postgresql' : 'mariadb'} ${tables ? 'tables' : 'raw'} (profiled)`;
  await backfill(kobo, asset, { dialect, tables, loaders: 1, label, redeliver: false, nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${dir}`] });
  await sleep(500);
  for (const line of topSelf(dir, 15)) console.log(line);
}

// ---------------------------------------------------------------- main
async function main(): Promise<void> {
  const started = new Date();
  log(`generating ${N} records`);
  const kobo = await startKoboSimulator({ token: TOKEN, submissions: 0, seed: 17, repeatShare: Number(args.repeats ?? 0.3) });
  const t0 = Date.now();
  const mkAsset = (n: number) => {
    const a = kobo.addAsset();
    for (let done = 0; done < n; done += 10_000) kobo.createSubmissions(a, Math.min(10_000, n - done));
    warm(kobo, a);
    return a;
  };
  const main = mkAsset(N);
  const recs = kobo.records(main);
  const avg = recs.reduce((a, r) => a + JSON.stringify(r).length, 0) / recs.length;
  const repeats = recs.filter((r) => Array.isArray(r['household/members'])).length / recs.length;
  log(`${N} records in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${Math.round(avg)} bytes of JSON on average, ${Math.round(repeats * 100)} % with a repeat`);
  try {
    if (args.profile) return await profile(kobo, main, path.resolve(args.profile));
    if (args['profile-ingress']) {
      const dir = path.resolve(args['profile-ingress']);
      await ingress(kobo, 'postgresql', dir);
      for (const line of topSelf(dir, 15)) console.log(line);
      return;
    }
    if (args['profile-tables']) return await profile(kobo, main, path.resolve(args['profile-tables']), true, args['profile-dialect'] === 'mysql' ? 'mysql' : 'postgresql');
    const needs = (d: Dialect) => (d === 'postgresql' ? ['pg', 'pg-tables', 'loaders', 'big'] : ['mariadb', 'mariadb-tables']).some((x) => want(x as (typeof SECTIONS)[number]));
    if (needs('postgresql')) setLimit('postgresql copy', await median3('postgresql copy', () => pgCopy(recs)), 'rows/s');
    if (needs('mysql')) setLimit('mariadb load data', await median3('mariadb load data', () => mariaLoad(recs)), 'rows/s');
    // The first scenario edits every record (all-newer): each later one copies the current versions.
    // A fresh asset per scenario (the first one edits its records); dropped after use to bound memory.
    let fresh = true;
    const asset = () => (fresh ? ((fresh = false), main) : mkAsset(N));
    if (want('pg')) await backfill(kobo, asset(), { dialect: 'postgresql', tables: false, loaders: 1, label: 'postgresql raw', redeliver: true, sweep: true, memory: 'base' });
    if (want('pg-tables')) await backfill(kobo, asset(), { dialect: 'postgresql', tables: true, loaders: 1, label: 'postgresql tables', redeliver: !QUICK });
    if (want('mariadb')) await backfill(kobo, asset(), { dialect: 'mysql', tables: false, loaders: 1, label: 'mariadb raw', redeliver: !QUICK });
    if (want('mariadb-tables')) await backfill(kobo, asset(), { dialect: 'mysql', tables: true, loaders: 1, label: 'mariadb tables', redeliver: !QUICK });
    if (want('loaders')) await loaderScaling(kobo, asset);
    if (args.big && want('big')) {
      const big = Number(args.big);
      // The memory ratio needs the base figures of the same run.
      if (!want('pg')) await backfill(kobo, asset(), { dialect: 'postgresql', tables: false, loaders: 1, label: 'postgresql raw', redeliver: true, sweep: true, memory: 'base' });
      log(`generating ${big} records for the memory ratio`);
      await backfill(kobo, mkAsset(big), { dialect: 'postgresql', tables: false, loaders: 1, label: `postgresql raw ${big}`, redeliver: false, sweep: true, memory: 'big' });
    }
    if (want('ingress')) await ingress(kobo, 'postgresql');
  } finally {
    await kobo.close();
  }
  const table = [
    `fieldsync bench — ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}${args['app-node-options'] ? `, apps with NODE_OPTIONS=${args['app-node-options']}` : ''}`,
    `${N} Kobo records, ${Math.round(avg)} B JSON on average, ${Math.round(repeats * 100)} % with a repeat group. Limits measured in the same run.`,
    '',
    '| measure | value | unit | limit | ratio |',
    '| --- | ---: | --- | --- | ---: |',
    ...rows.map((r) => `| ${r.name} | ${r.value} | ${r.unit} | ${r.limit ?? ''} | ${r.ratio ?? ''} |`),
  ].join('\n');
  console.log(table);
  if (args.json) writeFileSync(args.json, JSON.stringify(rows, null, 2));
}

await main();
process.exit(0);
