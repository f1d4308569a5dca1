/**
 * SIGTERM to the ingress under load: 16 keep-alive senders POST Kobo records
 * while the process is told to stop. Every request that reached the ingress
 * is answered (202, or 503 which Kobo retries), none is reset; after the
 * listener closes, new connections are refused (a sender knows that nothing
 * was delivered). The process exits 0 and every 202 is a job in Redis.
 */
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { createQueues, createRedis, type Queues } from '@fieldsync/queues';
import { dropQueuePrefix, testQueueSettings } from '@fieldsync/queues/testing';
import { freePort, startApp, stopAll, waitFor, writeConfig, type AppProcess } from './processes.ts';

const SENDERS = 16;
/** Each sender stops after this many requests, whatever happens (bounded load). */
const MAX_PER_SENDER = 400;
const AUTH = { username: 'kobo', password: 'sigterm-hook-pw' };

const settings = testQueueSettings();
let redis: Redis;
let queues: Queues;
const apps: AppProcess[] = [];

beforeAll(() => {
  redis = createRedis(settings.redisUrl, 'worker');
  queues = createQueues(settings, redis);
});
afterAll(async () => {
  await stopAll(apps);
  await queues?.close();
  redis?.disconnect();
  await dropQueuePrefix(settings);
});

type Outcome = { status: number; jobId?: string; key: string } | { error: string; key: string };

function post(agent: http.Agent, port: number, key: number): Promise<Outcome> {
  const body = JSON.stringify({
    _id: key,
    _xform_id_string: 'aSigterm',
    'meta/instanceID': `uuid:sigterm-${key}`,
    _submission_time: '2026-11-20T10:00:00',
    q: 'x'.repeat(200),
  });
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: '127.0.0.1', port, path: '/webhooks/kobo', method: 'POST', agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), authorization: `Basic ${Buffer.from(`${AUTH.username}:${AUTH.password}`).toString('base64')}` },
        timeout: 30_000,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('end', () => {
          let jobId: string | undefined;
          try {
            jobId = (JSON.parse(text) as { jobId?: string }).jobId;
          } catch {
            /* a non-JSON answer keeps no job id */
          }
          resolve({ status: res.statusCode!, jobId, key: String(key) });
        });
        res.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message, key: String(key) }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message, key: String(key) }));
    req.end(body);
  });
}

describe('SIGTERM to the ingress under 16 concurrent keep-alive senders', () => {
  it('answers every request it received (202 or 503), resets none, exits 0; every 202 is a job', async () => {
    const port = await freePort();
    const config = writeConfig(`sources:
  - id: kobo
    kind: kobo
    baseUrl: http://127.0.0.1:9
    token: "\${KOBO_TOKEN}"
    forms: [aSigterm]
    webhook: { basic: { username: ${AUTH.username}, password: "\${HOOK_PASSWORD}" } }
`);
    const ingress = startApp('ingress', {
      DATABASE_URL: 'postgresql://127.0.0.1:1/unused', // the ingress never opens it
      REDIS_URL: settings.redisUrl,
      FIELDSYNC_QUEUE_PREFIX: settings.prefix,
      FIELDSYNC_CONFIG: config,
      KOBO_TOKEN: 'unused',
      HOOK_PASSWORD: AUTH.password,
      INGRESS_PORT: String(port),
    });
    apps.push(ingress);
    await waitFor('the ingress to listen', () => /ingress listening/.test(ingress.output()), 60_000);

    const outcomes: Outcome[] = [];

    let next = 1;
    const senders = Array.from({ length: SENDERS }, async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        for (let i = 0; i < MAX_PER_SENDER; i++) {
          const o = await post(agent, port, next++);
          outcomes.push(o);
          // Refused: the listener is closed, nothing was sent; a real sender retries later.
          if ('error' in o && o.error === 'ECONNREFUSED') return;
        }
      } finally {
        agent.destroy();
      }
    });
    await waitFor('load to be under way', () => outcomes.length >= 300, 60_000, 5);
    const sigtermAt = outcomes.length;
    const t0 = Date.now();
    ingress.kill('SIGTERM');
    await Promise.all(senders);
    const code = await ingress.exited;
    const shutdownMs = Date.now() - t0;

    const answered = outcomes.filter((o): o is Extract<Outcome, { status: number }> => 'status' in o);
    const errors = outcomes.filter((o): o is Extract<Outcome, { error: string }> => 'error' in o);
    const refused = errors.filter((e) => e.error === 'ECONNREFUSED');
    const broken = errors.filter((e) => e.error !== 'ECONNREFUSED');
    const byStatus = answered.reduce<Record<number, number>>((m, o) => ((m[o.status] = (m[o.status] ?? 0) + 1), m), {});
    console.log(
      `[ingress SIGTERM] ${outcomes.length} requests (${outcomes.length - sigtermAt} after SIGTERM): statuses ${JSON.stringify(byStatus)}, ` +
        `${broken.length} reset/broken, ${refused.length} refused connections after the listener closed; exit ${code} after ${shutdownMs} ms`,
    );

    expect(broken.map((e) => e.error)).toEqual([]);
    expect(answered.filter((o) => o.status !== 202 && o.status !== 503)).toEqual([]);
    // Requests were in flight or arrived during shutdown, and were answered (a refused connection after the close does not count).
    expect(outcomes.slice(sigtermAt).filter((o) => 'status' in o).length).toBeGreaterThan(0);
    expect(code).toBe(0);
    expect(ingress.output()).toMatch(/http connections drained/);
    // Every 202 is durably a job carrying that record (concurrent requests' records may share a job).
    const accepted = answered.filter((o) => o.status === 202);
    expect(accepted.length).toBeGreaterThan(300);
    const jobs = await Promise.all(accepted.map((o) => queues.ingest.getJob(o.jobId!)));
    const missing = accepted.filter((o, i) => !(jobs[i]?.data as { submissions?: { key: string }[] } | undefined)?.submissions?.some((s) => s.key === o.key));
    expect(missing).toEqual([]);
  });
});
