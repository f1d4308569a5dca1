/**
 * "Are my webhook's records stored yet?": a webhook answer carries the job id,
 * and GET /admin/api/jobs/:id says waiting until the loader commits, then
 * stored — for an XML body too, whose records travel on in a follow-up job.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import request from 'supertest';
import { parseConfig, type FieldsyncConfig } from '@fieldsync/config';
import { openDatabase } from '@fieldsync/db';
import { onQueueWrites } from '@fieldsync/queues/testing';
import { koboSubmissionXml } from '@fieldsync/simulator';
import { openHarness, testLog as log, until, type Harness } from '@fieldsync/sync/testing';
import { createIngressApp } from './app.ts';
import { createMetrics } from './metrics.ts';

const ADMIN = { user: 'ops', password: 'ops-pw' };
const HOOK = { username: 'kobo', password: 'hook-secret' };
const hookAuth = `Basic ${Buffer.from(`${HOOK.username}:${HOOK.password}`).toString('base64')}`;

const config: FieldsyncConfig = parseConfig(
  JSON.stringify({ sources: [{ id: 'kobo', kind: 'kobo', baseUrl: 'http://127.0.0.1:9', token: '${T}', forms: ['aForm'], webhook: { basic: { username: HOOK.username, password: '${HOOK_PW}' } } }] }),
  'test.json',
  { T: 'x', HOOK_PW: HOOK.password },
);

describe('webhook job status', () => {
  let h: Harness;
  let app: ReturnType<typeof createIngressApp>;

  beforeAll(async () => {
    h = await openHarness('postgresql');
    app = createIngressApp({ config, queues: h.queues, redis: h.redis, log, metrics: createMetrics(), admin: ADMIN, db: () => h.db });
  });
  afterAll(async () => {
    await h?.close();
  });

  const job = async (id: string) => {
    const r = await request(app).get(`/admin/api/jobs/${id}`).auth(ADMIN.user, ADMIN.password);
    expect(r.status).toBe(200);
    return r.body as { state: string; stored: boolean; name: string };
  };

  it('JSON and XML webhooks: waiting while no loader runs, stored once it has committed them', async () => {
    const record = { _id: 41, _xform_id_string: 'aForm', 'meta/instanceID': 'uuid:41', _submission_time: '2026-11-01T10:00:00' };
    const json = await request(app).post('/webhooks/kobo').set('authorization', hookAuth).send(record);
    expect(json.status).toBe(202);
    expect(json.body.jobId).toEqual(expect.any(String));
    const xml = await request(app).post('/webhooks/kobo').set('authorization', hookAuth).set('content-type', 'application/xml')
      .send(koboSubmissionXml({ ...record, _id: 42, 'meta/instanceID': 'uuid:42', 'meta/rootUuid': 'uuid:42', __version__: 'v1' }));
    expect(xml.status).toBe(202);
    expect(await job(json.body.jobId)).toMatchObject({ state: 'waiting', stored: false });
    expect(await job(xml.body.jobId)).toMatchObject({ state: 'waiting', stored: false, name: 'unparsed-webhook' });

    h.startLoader({ config });
    expect(await until(() => job(json.body.jobId), (j) => j.stored)).toMatchObject({ state: 'completed', stored: true });
    expect(await h.db.prisma.submission.count({ where: { key: '41' } })).toBe(1);
    // The XML job's answer follows the ingest job it handed the record to.
    expect(await until(() => job(xml.body.jobId), (j) => j.stored)).toMatchObject({ state: 'completed', stored: true, name: 'ingest-batch' });
    expect(await h.db.prisma.submission.count({ where: { version: 'uuid:42' } })).toBe(1);
  });

  it('requests that shared a job: ?key= says which records are stored when the database refused one of them', async () => {
    h.startLoader({ config }); // besides the first test's, when it ran: either takes the job
    const rec = (id: number, extra: object = {}) => ({ _id: id, _xform_id_string: 'aForm', 'meta/instanceID': `uuid:${id}`, _submission_time: '2026-11-01T10:00:00', ...extra });
    // Redis slow for the first batch, so the next requests queue up behind it and share one job.
    let calls = 0;
    const undo = onQueueWrites(h.queues.ingest, async () => {
      if (calls++ === 0) await new Promise((r) => setTimeout(r, 300));
    });
    const post = (r: object) => request(app).post('/webhooks/kobo').set('authorization', hookAuth).send(r);
    const first = post(rec(50));
    await new Promise((r) => setTimeout(r, 50));
    const [good1, bad, good2] = await Promise.all([post(rec(51)), post(rec(52, { note: 'nul\u0000here' })), post(rec(53))]).finally(undo);
    await first;
    const id = good1!.body.jobId as string;
    expect([bad!.body.jobId, good2!.body.jobId]).toEqual([id, id]);
    const byKey = async (key: string) => {
      const r = await request(app).get(`/admin/api/jobs/${id}?key=${key}`).auth(ADMIN.user, ADMIN.password);
      return { status: r.status, stored: (r.body as { stored?: boolean }).stored };
    };
    // PostgreSQL's jsonb refuses the NUL: the other two commit, and the job retries with record 52 alone.
    expect(await until(() => byKey('51'), (j) => j.stored === true)).toEqual({ status: 200, stored: true });
    expect(await byKey('53')).toEqual({ status: 200, stored: true });
    expect(await byKey('52')).toEqual({ status: 200, stored: false });
    expect((await job(id)).stored).toBe(false);
    expect((await byKey('999')).status).toBe(404);
    expect(await h.db.prisma.submission.count({ where: { key: { in: ['51', '53'] } } })).toBe(2);
    expect(await h.db.prisma.submission.count({ where: { key: '52' } })).toBe(0);
  });

  it('with the database down, webhooks are still accepted while the admin routes answer 503', async () => {
    const down = openDatabase('postgresql://postgres@127.0.0.1:1/none', { connectTimeoutMs: 1_000 });
    const offline = createIngressApp({ config, queues: h.queues, redis: h.redis, log, metrics: createMetrics(), admin: ADMIN, db: () => down });
    try {
      const hook = await request(offline).post('/webhooks/kobo').set('authorization', hookAuth).send({ _id: 43, _xform_id_string: 'aForm', 'meta/instanceID': 'uuid:43', _submission_time: '2026-11-01T10:00:00' });
      expect(hook.status).toBe(202);
      const status = await request(offline).get('/admin/api/status').auth(ADMIN.user, ADMIN.password);
      expect(status.status).toBe(503);
      expect(status.body.error).toBe('database_unavailable');
      // Its job state comes from Redis alone.
      expect((await request(offline).get(`/admin/api/jobs/${hook.body.jobId}`).auth(ADMIN.user, ADMIN.password)).status).toBe(200);
    } finally {
      await down.close().catch(() => {});
    }
  });
});
