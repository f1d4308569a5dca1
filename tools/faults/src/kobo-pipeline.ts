/**
 * A Kobo simulator, a throwaway database, a fresh queue prefix and a config
 * file for the real apps: what the crash and restart fault tests share. One
 * asset is polled (the backfill); a second one only receives webhooks, so a
 * lost webhook cannot be hidden by a poll loading the same record.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Dialect } from '@fieldsync/db';
import { createTestDatabase, type TestDatabase } from '@fieldsync/db/testing';
import { createQueues, createRedis, type Queues, type QueueSettings } from '@fieldsync/queues';
import { dropQueuePrefix, testQueueSettings } from '@fieldsync/queues/testing';
import { startKoboSimulator, type KoboRecord, type KoboSimulator } from '@fieldsync/simulator';
import type { Redis } from 'ioredis';
import { freePort, startApp, stopAll, waitFor, writeConfig, type AppName, type AppProcess } from './processes.ts';

export interface KoboPipeline {
  kobo: KoboSimulator;
  /** Polled (backfilled) asset. */
  asset: string;
  /** Webhook-only asset: not in the config's forms, so only webhooks load it. */
  hookAsset: string;
  t: TestDatabase;
  settings: QueueSettings;
  queues: Queues;
  ingressUrl: string;
  webhookUrl: string;
  hookAuth: { username: string; password: string };
  apps: AppProcess[];
  /** Starts an app with the pipeline's env (plus `extraEnv`, e.g. METRICS_PORT). */
  start(name: AppName, extraEnv?: Record<string, string>): AppProcess;
  /** Loaded rows of a form by key → version, deleted ones included. */
  rows(formId: string): Promise<Map<string, string>>;
  /** Fails unless the form holds exactly these records (one row each, their current version). */
  expectExactly(formId: string, records: KoboRecord[]): Promise<void>;
  /** Dead letters in the table and on the queue, and failed ingest jobs. */
  deadLetters(): Promise<{ table: number; queue: number; failedIngest: number }>;
  /** Waits until the ingest queue has nothing waiting, active or delayed. */
  ingestDrained(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

export interface PipelineOptions {
  dialect?: Dialect;
  /** A database to use instead of a throwaway one on the shared test server (e.g. on a server the test stops). */
  database?: TestDatabase;
  /** Records in the polled asset at start. */
  submissions: number;
  pageSize?: number;
  batchSize?: number;
  concurrency?: number;
  /** Redis the apps use (default: the test Redis). */
  redisUrl?: string;
}

export async function openKoboPipeline(o: PipelineOptions): Promise<KoboPipeline> {
  const token = randomBytes(8).toString('hex');
  const hookAuth = { username: 'kobo', password: randomBytes(8).toString('hex') };
  const kobo = await startKoboSimulator({ token, submissions: 0, seed: 13, assets: [{}, {}] });
  const [asset, hookAsset] = kobo.assetUids as [string, string];
  kobo.createSubmissions(asset, o.submissions);
  const t = o.database ?? (await createTestDatabase(o.dialect ?? 'postgresql'));
  const settings = o.redisUrl ? { ...testQueueSettings(), redisUrl: o.redisUrl } : testQueueSettings();
  const redis: Redis = createRedis(settings.redisUrl, 'worker');
  redis.on('error', () => {}); // the Redis-restart test takes it away on purpose
  const queues = createQueues(settings, redis, () => {});
  const port = await freePort();
  // Schedules far apart: the first poll (the backfill) fires at start; nothing else runs by schedule.
  const configPath = writeConfig(`sources:
  - id: kobo
    kind: kobo
    baseUrl: ${kobo.url}
    token: "\${KOBO_TOKEN}"
    forms: [${asset}]
    pageSize: ${o.pageSize ?? 1000}
    batchSize: ${o.batchSize ?? 500}
    poll: { every: 1h }
    sweep: { every: 1h }
    http: { timeoutMs: 10000, retries: 8, backoffMs: 200, maxBackoffMs: 2000 }
    webhook:
      basic:
        username: ${hookAuth.username}
        password: "\${HOOK_PASSWORD}"
ingest:
  concurrency: ${o.concurrency ?? 4}
`);
  const env = {
    DATABASE_URL: t.url,
    REDIS_URL: settings.redisUrl,
    FIELDSYNC_QUEUE_PREFIX: settings.prefix,
    FIELDSYNC_CONFIG: configPath,
    KOBO_TOKEN: token,
    HOOK_PASSWORD: hookAuth.password,
    INGRESS_PORT: String(port),
  };
  const apps: AppProcess[] = [];
  const ingressUrl = `http://127.0.0.1:${port}`;

  const rows = async (formId: string) => {
    const r = await t.db.prisma.submission.findMany({ where: { sourceId: 'kobo', formId }, select: { key: true, version: true } });
    return new Map(r.map((x) => [x.key, x.version]));
  };
  return {
    kobo, asset, hookAsset, t, settings, queues, ingressUrl, webhookUrl: `${ingressUrl}/webhooks/kobo`, hookAuth, apps,
    start(name, extraEnv = {}) {
      const app = startApp(name, { ...env, ...extraEnv });
      apps.push(app);
      return app;
    },
    rows,
    async expectExactly(formId, records) {
      const got = await rows(formId);
      const count = await t.db.prisma.submission.count({ where: { sourceId: 'kobo', formId } });
      const missing = records.filter((r) => !got.has(String(r._id)));
      const wrong = records.filter((r) => got.has(String(r._id)) && got.get(String(r._id)) !== r['meta/instanceID']);
      const extra = [...got.keys()].filter((k) => !records.some((r) => String(r._id) === k));
      if (count !== records.length || missing.length || wrong.length || extra.length) {
        throw new Error(
          `form ${formId}: ${count} rows for ${records.length} records; missing ${missing.length} (${missing.slice(0, 5).map((r) => r._id).join(', ')}), ` +
            `wrong version ${wrong.length}, unexpected ${extra.length}`,
        );
      }
    },
    async deadLetters() {
      return {
        table: await t.db.prisma.deadLetter.count(),
        queue: await queues.deadLetter.count(),
        failedIngest: await queues.ingest.getFailedCount(),
      };
    },
    async ingestDrained(timeoutMs) {
      await waitFor('the ingest queue to drain', async () => {
        const c = await queues.ingest.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
        return Object.values(c).every((n) => n === 0);
      }, timeoutMs, 200);
    },
    async close() {
      await stopAll(apps);
      // FAULTS_LOG_DIR=dir keeps every app's output, to study a run that passed.
      const dir = process.env.FAULTS_LOG_DIR;
      if (dir) {
        mkdirSync(dir, { recursive: true });
        apps.forEach((a, i) => writeFileSync(path.join(dir, `${settings.prefix}-${i}-${a.name}.log`), a.output()));
      }
      await kobo.close();
      await queues.close().catch(() => {});
      redis.disconnect();
      await dropQueuePrefix(settings).catch(() => {});
      await t.drop();
    },
  };
}

/** The last lines of each app's output, for a failure message. */
export function tails(apps: AppProcess[], lines = 15): string {
  return apps.map((a, i) => `--- ${a.name} #${i} (${a.alive() ? 'running' : 'exited'})\n${a.output().split('\n').slice(-lines).join('\n')}`).join('\n');
}

export interface WebhookRun {
  /** Every record created, in order. */
  records: KoboRecord[];
  /** Resolves once every delivery (retries included) has ended; results in record order. */
  done: Promise<{ record: KoboRecord; status?: number; ok: boolean; attempts: number }[]>;
}

/**
 * New submissions in the webhook-only asset at a steady rate, each POSTed to
 * the real ingress like a Kobo REST Service: 503s and timeouts retried (Kobo's
 * policy, with the waits shortened), anything else final.
 */
export function steadyWebhooks(p: KoboPipeline, o: { perSecond: number; seconds: number }): WebhookRun {
  p.kobo.setRestService({ url: p.webhookUrl, auth: p.hookAuth, retryDelaysMs: [500, 1_000, 2_000, 4_000, 4_000, 4_000, 4_000, 4_000], timeoutMs: 10_000 });
  const records: KoboRecord[] = [];
  const tickMs = 100;
  const perTick = Math.max(1, Math.round((o.perSecond * tickMs) / 1000));
  const done = (async () => {
    const start = Date.now();
    for (let tick = 0; Date.now() - start < o.seconds * 1000; tick++) {
      records.push(...p.kobo.createSubmissions(p.hookAsset, perTick));
      const wait = start + (tick + 1) * tickMs - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    const results = await p.kobo.flushRestService();
    return records.map((record, i) => ({ record, status: results[i]?.status, ok: results[i]?.ok ?? false, attempts: results[i]?.attempts.length ?? 0 }));
  })();
  return { records, done };
}
