/** The loader as a real process: it loads, and on SIGTERM finishes its work and exits 0. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Redis } from 'ioredis';
import { makeSubmission } from '@fieldsync/model/testing';
import { createEmptyDatabase } from '@fieldsync/db/testing';
import { openDatabase, type Database } from '@fieldsync/db';
import { createQueues, createRedis, IngestBatch, type Queues } from '@fieldsync/queues';
import { testQueueSettings, dropQueuePrefix } from '@fieldsync/queues/testing';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

const sub = (i: number) => makeSubmission({ formId: 'f', key: String(i), version: `v${i}`, data: { i } });

describe('loader process', () => {
  const settings = testQueueSettings();
  let empty: { url: string; drop(): Promise<void> };
  let redis: Redis;
  let queues: Queues;
  let db: Database | undefined;
  let configFile: string;

  beforeAll(async () => {
    empty = await createEmptyDatabase('postgresql');
    redis = createRedis(settings.redisUrl, 'worker');
    queues = createQueues(settings, redis);
    const dir = mkdtempSync(path.join(tmpdir(), 'fieldsync-'));
    configFile = path.join(dir, 'fieldsync.config.yaml');
    writeFileSync(configFile, 'sources:\n  - { id: kobo, kind: kobo, baseUrl: "http://127.0.0.1:9", token: "${KOBO_TOKEN}", forms: [f] }\n');
  });
  afterAll(async () => {
    await db?.close();
    await queues?.close();
    redis?.disconnect();
    await dropQueuePrefix(settings);
    await empty?.drop();
  });

  it('migrates, loads what is queued, and exits 0 on SIGTERM', async () => {
    await queues.ingest.addBulk([0, 1, 2, 3].map((b) => ({ name: IngestBatch.name, data: { submissions: Array.from({ length: 250 }, (_, i) => sub(b * 250 + i)) }, opts: IngestBatch.options })));
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
      env: { ...process.env, DATABASE_URL: empty.url, REDIS_URL: settings.redisUrl, FIELDSYNC_QUEUE_PREFIX: settings.prefix, FIELDSYNC_CONFIG: configFile, KOBO_TOKEN: 'x', LOG_LEVEL: 'info', SHUTDOWN_TIMEOUT_S: '20' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));

    db = openDatabase(empty.url, { poolSize: 1 });
    const end = Date.now() + 30_000;
    let n = 0;
    while (Date.now() < end) {
      n = await db.prisma.submission.count().catch(() => 0);
      if (n === 1000) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(n, out).toBe(1000);

    // One more job in flight when the signal comes: it is finished, or returned to the queue — never lost.
    await queues.ingest.add(IngestBatch.name, { submissions: Array.from({ length: 500 }, (_, i) => sub(1000 + i)) }, IngestBatch.options);
    child.kill('SIGTERM');
    expect(await exited, out).toBe(0);
    expect(out).toMatch(/"msg":"stopped"/);
    const stored = await db.prisma.submission.count();
    const left = await queues.ingest.getJobCounts('waiting', 'active', 'delayed');
    expect(stored === 1500 || (left.waiting ?? 0) + (left.active ?? 0) + (left.delayed ?? 0) === 1).toBe(true);
    expect(out).not.toContain('"level":50');
  });
});
