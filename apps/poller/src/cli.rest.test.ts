/** `sync --test-mode` as a user runs it on a new REST configuration: a preview that writes nothing, unless --write. */
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
import { startRestSimulator, type RestSimulator } from '@fieldsync/simulator';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('./cli.ts', import.meta.url));

describe('sync --test-mode on a REST source', () => {
  const settings = testQueueSettings();
  let t: TestDatabase;
  let redis: Redis;
  let queues: Queues;
  let sim: RestSimulator;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    t = await createTestDatabase('postgresql');
    redis = createRedis(settings.redisUrl, 'worker');
    queues = createQueues(settings, redis);
    sim = await startRestSimulator({ conversations: 40, auth: 'login' });
    const dir = mkdtempSync(path.join(tmpdir(), 'fieldsync-'));
    const configFile = path.join(dir, 'fieldsync.config.yaml');
    writeFileSync(
      configFile,
      `sources:
  - id: calls
    kind: rest
    baseUrl: ${sim.url}
    auth:
      login: { path: /auth/login, username: ${sim.username}, password: "\${CALLS_PASSWORD}", tokenPath: data.access_token, expiresInPath: data.expires_in }
    endpoints:
      - name: conversations
        path: /api/page/conversations
        recordsPath: data.items
        key: id
        updatedField: updated_at
        updatedParam: updated_since
        paging: { style: page, size: 100 }
`,
    );
    env = { ...process.env, DATABASE_URL: t.url, REDIS_URL: settings.redisUrl, FIELDSYNC_QUEUE_PREFIX: settings.prefix, FIELDSYNC_CONFIG: configFile, CALLS_PASSWORD: sim.password, LOG_LEVEL: 'warn' };
  });
  afterAll(async () => {
    await queues?.close();
    redis?.disconnect();
    await sim?.close();
    await dropQueuePrefix(settings);
    await t?.drop();
  });

  it('--limit 5 fetches five records, prints them with the inferred columns, and writes nothing', async () => {
    const before = sim.requests.length;
    const { stdout } = await run(process.execPath, ['--import', 'tsx', CLI, '--source', 'calls', '--test-mode', '--limit', '5'], { env });
    expect(stdout).toContain('calls/conversations: 5 record(s) read; nothing written');
    // The inferred columns, named as the typed table would name them.
    for (const col of [/id\s+\| bigint/, /started_at\s+\| timestamp/, /resolved\s+\| boolean/, /scores__quality\s+\| bigint/, /tags\s+\| text/]) expect(stdout).toMatch(col);
    const recordLines = stdout.split('records:')[1]!.trim().split('\n').slice(2);
    expect(recordLines.map((l) => l.split('|')[0]!.trim())).toEqual(['1001', '1002', '1003', '1004', '1005']);
    // One page of five, not the configured hundred.
    const pages = sim.requests.slice(before).filter((r) => r.path.startsWith('/api/'));
    expect(pages.map((r) => r.query.per_page)).toEqual(['5']);
    expect(await t.db.prisma.syncRun.count()).toBe(0);
    expect(await t.db.prisma.syncState.count()).toBe(0);
    expect(await queues.ingest.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed')).toEqual({ waiting: 0, active: 0, completed: 0, failed: 0, delayed: 0 });
  });

  it('--write enqueues just those records and leaves the cursor unset', async () => {
    await run(process.execPath, ['--import', 'tsx', CLI, '--source', 'calls', '--test-mode', '--limit', '5', '--write'], { env });
    const jobs = await queues.ingest.getJobs(['waiting', 'delayed', 'active']);
    expect(jobs.flatMap((j) => (j.data as { submissions: { key: string }[] }).submissions.map((s) => s.key))).toEqual(['1001', '1002', '1003', '1004', '1005']);
    expect(await t.db.prisma.syncState.count()).toBe(0);
  });
});
