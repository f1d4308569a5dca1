/**
 * The admin API against a real deployment in miniature: a Kobo simulator, the
 * poller and loader on real Redis and PostgreSQL. Answers are checked against
 * the same zod schemas the OpenAPI document is generated from.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import express from 'express';
import request from 'supertest';
import { openDatabase, type Dialect } from '@fieldsync/db';
import { IngestBatch } from '@fieldsync/queues';
import { drained } from '@fieldsync/queues/testing';
import { testLog as log, until } from '@fieldsync/sync/testing';
import { createAdminRouter } from './admin.ts';
import { DeadLetterDetail, DeadLettersPage, JobStatus, RunsPage, StatusResponse } from './schemas.ts';
import { openAdminFixture, type AdminFixture } from './testing.ts';

const ADMIN = { user: 'ops', password: 'ops-pw' };
const VIEWER = { user: 'viewer', password: 'viewer-pw' };

describe.each<Dialect>(['postgresql', 'mysql'])('admin API on %s', (dialect) => {
  let f: AdminFixture;
  let app: express.Express;

  beforeAll(async () => {
    f = await openAdminFixture({ submissions: 30, dialect });
    f.h.startLoader();
    f.h.startPoller(f.config);
    app = express();
    app.use('/admin', createAdminRouter({ config: f.config, queues: f.h.queues, log, db: () => f.h.db, accounts: { admin: ADMIN, readonly: VIEWER } }));
  });
  afterAll(async () => {
    await f?.close();
  });

  /** A logged-in client with its session cookie and CSRF token, as a browser or `curl -c jar -b jar` has. */
  async function session(who = ADMIN) {
    const agent = request.agent(app);
    const r = await agent.get('/admin/api/csrf').auth(who.user, who.password);
    expect(r.status).toBe(200);
    return { agent, token: r.body.token as string };
  }

  it('needs the admin or read-only credentials', async () => {
    expect((await request(app).get('/admin/api/status')).status).toBe(401);
    expect((await request(app).get('/admin/api/status').auth('ops', 'wrong')).status).toBe(401);
    expect((await request(app).get('/admin/api/status').auth(VIEWER.user, VIEWER.password)).status).toBe(200);
  });

  it('"sync now" queues a poll the poller runs: the status shows the run, the rows and the next scheduled runs', async () => {
    const { agent, token } = await session();
    const r = await agent.post(`/admin/api/sources/kobo/forms/${f.asset}/sync`).auth(ADMIN.user, ADMIN.password).set('x-csrf-token', token).send({ mode: 'poll' });
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ sourceId: 'kobo', formId: f.asset, mode: 'poll' });
    await until(() => f.h.db.prisma.syncRun.count({ where: { outcome: 'ok', mode: 'poll' } }), (n) => n > 0);
    await drained(f.h.queues.ingest);

    const s = await request(app).get('/admin/api/status').auth(ADMIN.user, ADMIN.password);
    expect(s.status).toBe(200);
    const body = StatusResponse.parse(s.body);
    const form = body.sources[0]!.forms[0]!;
    expect(form).toMatchObject({ sourceId: 'kobo', formId: f.asset, kind: 'kobo', currentError: null, rows: { live: 30, deleted: 0 }, deadLetters: 0 });
    expect(form.lastPoll).toMatchObject({ outcome: 'ok', fetched: 30, enqueued: 30 });
    expect(form.lastPoll!.durationMs).toBeGreaterThanOrEqual(0);
    expect(form.lastSuccessAt).not.toBeNull();
    expect(form.cursor).toHaveProperty('lastId');
    // The schedulers (daily cron): both in the future.
    expect(Date.parse(form.nextRun.poll!)).toBeGreaterThan(Date.now());
    expect(Date.parse(form.nextRun.sweep!)).toBeGreaterThan(Date.now());
  });

  it('refuses unknown forms, bad modes, and state changes without a valid session token, cross-site, or by the read-only account', async () => {
    const { agent, token } = await session();
    const post = (path: string) => agent.post(`/admin/api${path}`).auth(ADMIN.user, ADMIN.password);
    expect((await post('/sources/kobo/forms/nope/sync').set('x-csrf-token', token).send({})).status).toBe(404);
    expect((await post(`/sources/kobo/forms/${f.asset}/sync`).set('x-csrf-token', token).send({ mode: 'everything' })).status).toBe(400);
    const noToken = await post(`/sources/kobo/forms/${f.asset}/sync`).send({});
    expect(noToken.status).toBe(403);
    expect(noToken.body.error).toBe('csrf');
    expect((await post(`/sources/kobo/forms/${f.asset}/sync`).set('x-csrf-token', 'forged').send({})).status).toBe(403);
    // Another session's token is not this session's.
    const other = await session();
    expect((await post(`/sources/kobo/forms/${f.asset}/sync`).set('x-csrf-token', other.token).send({})).status).toBe(403);
    const cross = await post(`/sources/kobo/forms/${f.asset}/sync`).set('x-csrf-token', token).set('origin', 'https://evil.example').send({});
    expect(cross.status).toBe(403);
    expect(cross.body.error).toBe('cross_site');
    expect((await post('/dead-letters/replay').set('x-csrf-token', token).set('sec-fetch-site', 'cross-site').send({})).status).toBe(403);
    const ro = await session(VIEWER);
    const refused = await ro.agent.post('/admin/api/dead-letters/replay').auth(VIEWER.user, VIEWER.password).set('x-csrf-token', ro.token).send({});
    expect(refused.status).toBe(403);
    expect(refused.body.error).toBe('read_only');
  });

  it('runs: paginated, newest first, filtered', async () => {
    const all = RunsPage.parse((await request(app).get('/admin/api/runs?limit=1').auth(ADMIN.user, ADMIN.password)).body);
    expect(all.items).toHaveLength(1);
    expect(all.total).toBeGreaterThanOrEqual(1);
    const polls = RunsPage.parse((await request(app).get(`/admin/api/runs?mode=poll&outcome=ok&formId=${f.asset}`).auth(ADMIN.user, ADMIN.password)).body);
    expect(polls.items.length).toBeGreaterThan(0);
    expect(polls.items.every((r) => r.mode === 'poll' && r.outcome === 'ok')).toBe(true);
    expect(RunsPage.parse((await request(app).get('/admin/api/runs?sourceId=nobody').auth(ADMIN.user, ADMIN.password)).body).total).toBe(0);
    expect((await request(app).get('/admin/api/runs?limit=0').auth(ADMIN.user, ADMIN.password)).status).toBe(400);
  });

  it('dead letters: listed, one with payload and error, replayed by id into the database and off the list', async () => {
    const id = await f.deadLetter('a', 2);
    await f.deadLetter('b', 1);
    const list = DeadLettersPage.parse((await request(app).get('/admin/api/dead-letters').auth(ADMIN.user, ADMIN.password)).body);
    expect(list.total).toBe(2);
    expect(list.items.find((d) => d.id === id)).toMatchObject({ records: 2, sourceId: 'kobo', formId: f.asset });
    const one = DeadLetterDetail.parse((await request(app).get(`/admin/api/dead-letters/${id}`).auth(ADMIN.user, ADMIN.password)).body);
    expect(one.error).toMatch(/ECONNREFUSED/);
    expect((one.payload as { submissions: { key: string }[] }).submissions.map((s) => s.key)).toEqual(['dead-a-0', 'dead-a-1']);
    expect((await request(app).get('/admin/api/dead-letters/999999').auth(ADMIN.user, ADMIN.password)).status).toBe(404);
    expect((await request(app).get('/admin/api/dead-letters/x1').auth(ADMIN.user, ADMIN.password)).status).toBe(400);
    const status = StatusResponse.parse((await request(app).get('/admin/api/status').auth(ADMIN.user, ADMIN.password)).body);
    expect(status.sources[0]!.forms[0]!.deadLetters).toBe(2);

    const { agent, token } = await session();
    const r = await agent.post('/admin/api/dead-letters/replay').auth(ADMIN.user, ADMIN.password).set('x-csrf-token', token).send({ ids: [id] });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ replayed: 2 });
    await until(() => f.h.db.prisma.submission.count({ where: { key: { startsWith: 'dead-a-' } } }), (n) => n === 2);
    expect(await f.h.db.prisma.submission.count({ where: { key: { startsWith: 'dead-a-' }, via: 'replay' } })).toBe(2);
    const after = DeadLettersPage.parse((await request(app).get('/admin/api/dead-letters').auth(ADMIN.user, ADMIN.password)).body);
    expect(after.items.map((d) => d.id)).not.toContain(id);
    expect(after.total).toBe(1);
    expect(DeadLettersPage.parse((await request(app).get('/admin/api/dead-letters?replayed=true').auth(ADMIN.user, ADMIN.password)).body).total).toBe(2);
  });

  it('jobs/:id tells whether a webhook job\'s records are stored', async () => {
    const now = new Date().toISOString();
    const job = await f.h.queues.ingest.add(IngestBatch.name, {
      submissions: [{ sourceId: 'kobo', formId: f.asset, key: 'hook-1', version: 'uuid:hook-1', updatedAt: now, submittedAt: now, deleted: false, observedAt: now, data: { _id: 'hook-1' }, via: 'webhook' }],
    }, IngestBatch.options);
    const st = await until(async () => JobStatus.parse((await request(app).get(`/admin/api/jobs/${job.id}`).auth(ADMIN.user, ADMIN.password)).body), (j) => j.stored);
    expect(st).toMatchObject({ id: job.id, queue: 'ingest', state: 'completed', stored: true });
    expect(await f.h.db.prisma.submission.count({ where: { key: 'hook-1' } })).toBe(1);
    expect((await request(app).get('/admin/api/jobs/does-not-exist').auth(ADMIN.user, ADMIN.password)).status).toBe(404);
    expect((await request(app).get(`/admin/api/jobs/${job.id}?queue=nope`).auth(ADMIN.user, ADMIN.password)).status).toBe(400);
  });

  it('with the database down, database routes answer 503 and the rest still work', async () => {
    const down = openDatabase('postgresql://postgres@127.0.0.1:1/none', { connectTimeoutMs: 1_000 });
    const offline = express();
    offline.use('/admin', createAdminRouter({ config: f.config, queues: f.h.queues, log, db: () => down, accounts: { admin: ADMIN } }));
    try {
      for (const path of ['/admin/api/status', '/admin/api/runs', '/admin/api/dead-letters']) {
        const r = await request(offline).get(path).auth(ADMIN.user, ADMIN.password);
        expect(r.status, path).toBe(503);
        expect(r.body.error).toBe('database_unavailable');
      }
      expect((await request(offline).get('/admin/status').auth(ADMIN.user, ADMIN.password)).status).toBe(503);
      // No database at all (none could be opened): 503 too.
      const none = express();
      none.use('/admin', createAdminRouter({ config: f.config, queues: f.h.queues, log, db: () => { throw new Error('no database configured'); }, accounts: { admin: ADMIN } }));
      expect((await request(none).get('/admin/api/runs').auth(ADMIN.user, ADMIN.password)).status).toBe(503);
      expect((await request(offline).get('/admin/api/openapi.json').auth(ADMIN.user, ADMIN.password)).status).toBe(200);
    } finally {
      await down.close().catch(() => {});
    }
  });
});
