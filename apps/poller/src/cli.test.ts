/** The one-off CLI as a user runs it: backfill a form from scratch into the ingest queue. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { createTestDatabase, type TestDatabase } from '@fieldsync/db/testing';
import { createQueues, createRedis, type Queues } from '@fieldsync/queues';
import { testQueueSettings, dropQueuePrefix } from '@fieldsync/queues/testing';
import { startKoboSimulator, type KoboSimulator } from '@fieldsync/simulator';

const run = promisify(execFile);
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
