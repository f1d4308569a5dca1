/**
 * Bodies a legitimate Kobo REST Service sends, through the real ingress and
 * loader processes: a `payload_template` wrapping the record and an
 * `export_type=xml` body load; a body no parser understands is answered 202
 * and kept as a dead letter with its raw body, then loads once the config
 * names where its record is and the dead letters are replayed (by the real
 * replay command, with the configured retry policy).
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { createTestDatabase, type TestDatabase } from '@fieldsync/db/testing';
import { decodeDeadLetterPayload } from '@fieldsync/db';
import { createQueues, createRedis, type Queues } from '@fieldsync/queues';
import { dropQueuePrefix, testQueueSettings } from '@fieldsync/queues/testing';
import { sendKoboRestService, startKoboSimulator, type KoboRecord, type KoboSimulator } from '@fieldsync/simulator';
import { ROOT, freePort, startApp, stopAll, waitFor, writeConfig, type AppProcess } from './processes.ts';

const AUTH = { username: 'kobo', password: 'bodies-hook-pw' };
const settings = testQueueSettings();
let t: TestDatabase;
let redis: Redis;
let queues: Queues;
let kobo: KoboSimulator;
let records: KoboRecord[];
let asset: string;
const apps: AppProcess[] = [];

const configText = (recordPath?: string) => `sources:
  - id: kobo
    kind: kobo
    baseUrl: ${kobo.url}
    token: "\${KOBO_TOKEN}"
    forms: [${asset}]
    poll: { every: 1h }
    sweep: { every: 1h }
    webhook:
      basic: { username: ${AUTH.username}, password: "\${HOOK_PASSWORD}" }${recordPath ? `\n      recordPath: ${recordPath}` : ''}
ingest: { attempts: 3, backoffMs: 200, concurrency: 2 }
`;

beforeAll(async () => {
  kobo = await startKoboSimulator({ submissions: 0, seed: 21 });
  asset = kobo.assetUids[0]!;
  // Created hidden: the API shows none of them, so only the webhooks can load them.
  records = kobo.createSubmissions(asset, 3, { hidden: true });
  t = await createTestDatabase('postgresql');
  redis = createRedis(settings.redisUrl, 'worker');
  queues = createQueues(settings, redis);
});
afterAll(async () => {
  await stopAll(apps);
  await kobo?.close();
  await queues?.close();
  redis?.disconnect();
  await dropQueuePrefix(settings);
  await t?.drop();
});

describe('webhook bodies through the real ingress and loader', () => {
  it('template and XML bodies load; an unknown shape is a dead letter with its raw body, loaded after a config change and a replay', async () => {
    const port = await freePort();
    const configPath = writeConfig(configText());
    const env = {
      DATABASE_URL: t.url, REDIS_URL: settings.redisUrl, FIELDSYNC_QUEUE_PREFIX: settings.prefix, FIELDSYNC_CONFIG: configPath,
      KOBO_TOKEN: kobo.token, HOOK_PASSWORD: AUTH.password, INGRESS_PORT: String(port),
    };
    const ingress = startApp('ingress', env);
    let loader = startApp('loader', env);
    apps.push(ingress, loader);
    await waitFor('the apps to start', () => /ingress listening/.test(ingress.output()) && /loader consuming ingest/.test(loader.output()), 90_000);
    const url = `http://127.0.0.1:${port}/webhooks/kobo`;
    const [templated, xml, odd] = records as [KoboRecord, KoboRecord, KoboRecord];
    const send = (r: KoboRecord, o: { payloadTemplate?: string; exportType?: 'xml' }) => sendKoboRestService(r, { url, auth: AUTH, retryDelaysMs: [], ...o });

    expect((await send(templated, { payloadTemplate: '{"source": "kf", "submission": %SUBMISSION%}' })).status).toBe(202);
    expect((await send(xml, { exportType: 'xml' })).status).toBe(202);
    // Three levels down: deeper than detection looks, so only a configured recordPath finds it.
    const oddTemplate = '{"source": "kf", "payload": {"data": {"entry": %SUBMISSION%}}}';
    const oddResult = await send(odd, { payloadTemplate: oddTemplate });
    expect(oddResult.status).toBe(202);
    expect(JSON.parse(oddResult.attempts[0]!.body!)).toMatchObject({ accepted: 0, kept: true });

    const row = (key: string) => t.db.prisma.submission.findUnique({ where: { sourceId_formId_key: { sourceId: 'kobo', formId: asset, key } } });
    await waitFor('template and XML records loaded', async () => (await row(String(templated._id))) !== null && (await row(String(xml['meta/rootUuid']))) !== null, 30_000);
    expect((await row(String(templated._id)))!.data).toEqual(templated);
    expect((await row(String(xml['meta/rootUuid'])))!.data).toMatchObject({ 'meta/instanceID': xml['meta/instanceID'], 'household/respondent_name': xml['household/respondent_name'] });

    // The unknown shape: a DeadLetter row (raw body and reason) and a dead-letter queue copy, at once (no retries).
    await waitFor('the odd body dead-lettered', async () => (await t.db.prisma.deadLetter.count()) === 1, 30_000);
    const dl = (await t.db.prisma.deadLetter.findFirst())!;
    expect(dl).toMatchObject({ jobName: 'unparsed-webhook', sourceId: 'kobo', attempts: 1, replayedAt: null });
    expect(dl.error).toMatch(/^webhook body not understood: /);
    const kept = decodeDeadLetterPayload(dl.payload) as { body: string; contentType: string };
    expect(kept.body).toBe(oddTemplate.replace('%SUBMISSION%', JSON.stringify(odd)));
    expect(await queues.deadLetter.count()).toBe(1);
    expect(await row(String(odd._id))).toBeNull();

    // The operator names the record's path, restarts the loader, replays.
    writeFileSync(configPath, configText('payload.data.entry'));
    loader.kill('SIGTERM');
    expect(await loader.exited).toBe(0);
    loader = startApp('loader', env);
    apps.push(loader);
    await waitFor('the new loader', () => /loader consuming ingest/.test(loader.output()), 60_000);
    const replay = await promisify(execFile)(process.execPath, ['--import', 'tsx', path.join(ROOT, 'apps/loader/src/replay.ts')], { cwd: ROOT, env: { ...process.env, ...env } });
    expect(replay.stdout).toMatch(/replayed 1 /);
    await waitFor('the odd record loaded', async () => (await row(String(odd._id))) !== null, 30_000);
    expect((await row(String(odd._id)))!.data).toEqual(odd);
    expect((await t.db.prisma.deadLetter.findFirst())!.replayedAt).not.toBeNull();
    expect(await queues.deadLetter.count()).toBe(0);
    // Replayed work runs under the configured retry policy (ingest.attempts: 3), not the catalog default.
    const done = await queues.ingest.getJobs(['completed']);
    const replayed = done.filter((j) => j.name === 'unparsed-webhook' && j.timestamp > dl.failedAt.getTime());
    expect(replayed.map((j) => j.opts.attempts)).toEqual([3]);
    expect(await t.db.prisma.submission.count()).toBe(3);
    expect(ingress.alive()).toBe(true);
  });
});
