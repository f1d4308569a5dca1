/** The one-off CLI as a user runs it: backfill a form from scratch into the ingest queue. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { createTestDatabase, type TestDatabase } from '@fieldsync/db/testing';
import { createQueues, createRedis, type Queues } from '@fieldsync/queues';
import { testQueueSettings, dropQueuePrefix } from '@fieldsync/queues/testing';
import { HOUSEHOLD_FORM, startKoboSimulator, startOdkSimulator, type KoboSimulator, type OdkSimulator } from '@fieldsync/simulator';
import { parseConfig } from '@fieldsync/config';
import { createConnector } from '@fieldsync/connectors';
import { createLogger } from '@fieldsync/logger';
import { runPoll } from '@fieldsync/sync';

const run = promisify(execFile);

async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v) || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
}
const CLI = fileURLToPath(new URL('./cli.ts', import.meta.url));

describe('poller CLI', () => {
  const settings = testQueueSettings();
  let t: TestDatabase;
  let redis: Redis;
  let queues: Queues;
  let kobo: KoboSimulator;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    t = await createTestDatabase('postgresql');
    redis = createRedis(settings.redisUrl, 'worker');
    queues = createQueues(settings, redis);
    kobo = await startKoboSimulator({ submissions: 1200, seed: 2 });
    const dir = mkdtempSync(path.join(tmpdir(), 'fieldsync-'));
    const configFile = path.join(dir, 'fieldsync.config.yaml');
    writeFileSync(configFile, `sources:\n  - id: kobo\n    kind: kobo\n    baseUrl: ${kobo.url}\n    token: "\${KOBO_TOKEN}"\n    forms: [${kobo.assetUids[0]}]\n    batchSize: 250\n`);
    env = { ...process.env, DATABASE_URL: t.url, REDIS_URL: settings.redisUrl, FIELDSYNC_QUEUE_PREFIX: settings.prefix, FIELDSYNC_CONFIG: configFile, KOBO_TOKEN: kobo.token, LOG_LEVEL: 'warn' };
  });
  afterAll(async () => {
    await queues?.close();
    redis?.disconnect();
    await kobo?.close();
    await dropQueuePrefix(settings);
    await t?.drop();
  });

  it('--initialize pages the whole form into ingest batches and logs a backfill run', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', CLI, '--source', 'kobo', '--initialize'], { env });
    const line = JSON.parse(stdout.trim().split('\n').pop()!);
    expect(line).toMatchObject({ source: 'kobo', form: kobo.assetUids[0], mode: 'backfill', fetched: 1200, enqueued: 1200 });
    expect(await queues.ingest.count()).toBe(5); // 1,200 records in batches of 250
    const run1 = await t.db.prisma.syncRun.findFirstOrThrow();
    expect(run1).toMatchObject({ mode: 'backfill', outcome: 'ok', fetched: 1200 });
  });

  it('names an unknown source clearly and exits 2', async () => {
    const err = await run(process.execPath, ['--import', 'tsx', CLI, '--source', 'nope'], { env }).catch((e) => e);
    expect(err.code).toBe(2);
    expect(err.stderr).toMatch(/no source "nope" in the config \(have: kobo\)/);
  });
});

describe('poller CLI: sessions, refused logins, a killed run', () => {
  const settings = testQueueSettings();
  let t: TestDatabase;
  let redis: Redis;
  let queues: Queues;
  let odk: OdkSimulator;
  let kobo: KoboSimulator;
  let env: NodeJS.ProcessEnv;
  const FORM = HOUSEHOLD_FORM.xmlFormId;

  beforeAll(async () => {
    t = await createTestDatabase('postgresql');
    redis = createRedis(settings.redisUrl, 'worker');
    queues = createQueues(settings, redis);
    odk = await startOdkSimulator({ submissions: 40, seed: 5 });
    kobo = await startKoboSimulator({ submissions: 1500, seed: 9 });
    const dir = mkdtempSync(path.join(tmpdir(), 'fieldsync-'));
    const configFile = path.join(dir, 'fieldsync.config.yaml');
    writeFileSync(
      configFile,
      [
        'sources:',
        `  - { id: kobo, kind: kobo, baseUrl: "${kobo.url}", token: "\${KOBO_TOKEN}", forms: [${kobo.assetUids[0]}], pageSize: 100, batchSize: 100 }`,
        `  - id: odk`,
        `    kind: odk`,
        `    baseUrl: ${odk.url}`,
        `    projectId: ${odk.projectId}`,
        `    forms: [${FORM}]`,
        `    auth: { session: { email: "${odk.email}", password: "\${ODK_PASSWORD}" } }`,
        '',
      ].join('\n'),
    );
    env = { ...process.env, DATABASE_URL: t.url, REDIS_URL: settings.redisUrl, FIELDSYNC_QUEUE_PREFIX: settings.prefix, FIELDSYNC_CONFIG: configFile, KOBO_TOKEN: kobo.token, ODK_PASSWORD: odk.password, LOG_LEVEL: 'warn' };
  });
  afterAll(async () => {
    await queues?.close();
    redis?.disconnect();
    await odk?.close();
    await kobo?.close();
    await dropQueuePrefix(settings);
    await t?.drop();
  });

  it('logs its ODK session out when it finishes', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', CLI, '--source', 'odk'], { env });
    expect(JSON.parse(stdout.trim().split('\n').pop()!)).toMatchObject({ source: 'odk', form: FORM, mode: 'poll', fetched: 40 });
    expect(odk.requests.filter((r) => r.path.startsWith('/v1/sessions')).map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual([
      'POST /v1/sessions 200',
      'DELETE /v1/sessions/current 200',
    ]);
    expect(odk.openSessions()).toBe(0);
  });

  it('a refused ODK login: one attempt, exit 1, the key to fix named, an auth_failed run', async () => {
    odk.clearRequests();
    const err = await run(process.execPath, ['--import', 'tsx', CLI, '--source', 'odk'], { env: { ...env, ODK_PASSWORD: 'wrong' } }).catch((e) => e);
    expect(err.code).toBe(1);
    expect(err.stderr).toContain('poll failed: ODK login refused: check sources[1].auth.session.email/password (401.2: Could not authenticate with the provided credentials.)');
    expect(odk.requests.map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual(['POST /v1/sessions 401']);
    const last = await t.db.prisma.syncRun.findFirstOrThrow({ where: { sourceId: 'odk' }, orderBy: { id: 'desc' } });
    expect(last).toMatchObject({ outcome: 'auth_failed', error: 'ODK login refused: check sources[1].auth.session.email/password (401.2: Could not authenticate with the provided credentials.)' });
  });

  it('kill -9 mid-backfill: the run showed its counts while alive and the next run of the form closes it as interrupted', async () => {
    const form = kobo.assetUids[0]!;
    kobo.failNext(...Array.from({ length: 8 }, () => ({ delayMs: 300 }))); // a slow source: ~300 ms a page
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, '--source', 'kobo', '--initialize'], { env, stdio: 'ignore' });
    const exited = new Promise((r) => child.on('exit', r));
    const runRow = () => t.db.prisma.syncRun.findFirst({ where: { sourceId: 'kobo', formId: form } });
    const alive = await until(runRow, (r) => (r?.enqueued ?? 0) >= 100, 30_000);
    child.kill('SIGKILL');
    await exited;
    const dead = (await runRow())!;
    expect(alive).toMatchObject({ mode: 'backfill', outcome: 'running' });
    expect(dead).toMatchObject({ outcome: 'running', finishedAt: null });
    expect(dead.enqueued).toBeGreaterThanOrEqual(100);
    expect(await queues.ingest.count()).toBeGreaterThanOrEqual(dead.enqueued / 100); // what it says it enqueued is in Redis

    // The next run of the form (here in-process, told a dead run is one silent for 500 ms; the default is 2 min).
    await new Promise((r) => setTimeout(r, 600));
    const config = parseConfig(readFileSync(env.FIELDSYNC_CONFIG!, 'utf8'), 'config.yaml', env);
    const log = createLogger('test', { level: 'silent' });
    await runPoll({ db: t.db, queues, log, batchSize: 100, staleAfterMs: 500 }, { connector: createConnector(config.sources[0]!), formId: form, mode: 'poll' });
    const closed = await t.db.prisma.syncRun.findFirstOrThrow({ where: { id: dead.id } });
    expect(closed).toMatchObject({ outcome: 'interrupted', fetched: dead.fetched, enqueued: dead.enqueued });
    expect(closed.finishedAt).toEqual(dead.heartbeatAt);
    expect(closed.error).toMatch(/^interrupted: /);
  });
});
