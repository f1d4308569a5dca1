import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import request from 'supertest';
import { createHmac } from 'node:crypto';
import { Writable } from 'node:stream';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Redis } from 'ioredis';
import { parseConfig, type FieldsyncConfig } from '@fieldsync/config';
import type { Dialect } from '@fieldsync/db';
import { createQueues, createRedis, type Queues } from '@fieldsync/queues';
import { testQueueSettings, dropQueuePrefix, drained, onQueueWrites } from '@fieldsync/queues/testing';
import { createLogger } from '@fieldsync/logger';
import { openHarness, testLog as log, type Harness } from '@fieldsync/sync/testing';
import { startKoboSimulator, sendKoboRestService, koboSubmissionXml, type KoboSimulator, type KoboRecord } from '@fieldsync/simulator';
import { decodeDeadLetterPayload } from '@fieldsync/db';
import { until } from '@fieldsync/sync/testing';
import { createIngressApp } from './app.ts';
import { createMetrics } from './metrics.ts';

const HOOK = { username: 'kobo', password: 'hook-secret' };

function config(): FieldsyncConfig {
  return parseConfig(
    `sources:
  - id: kobo-test
    kind: kobo
    baseUrl: http://127.0.0.1:9
    token: \${T}
    forms: [aForm]
    webhook: { basic: { username: kobo, password: "\${HOOK_PW}" } }
  - id: kobo-wrapped
    kind: kobo
    baseUrl: http://127.0.0.1:9
    token: \${T}
    forms: [aForm]
    webhook: { basic: { username: kobo, password: "\${HOOK_PW}" }, recordPath: envelope.record }
  - id: kobo-token
    kind: kobo
    baseUrl: http://127.0.0.1:9
    token: \${T}
    forms: [aForm]
    webhook: { token: "\${HOOK_PW}" }
  - id: kobo-hmac
    kind: kobo
    baseUrl: http://127.0.0.1:9
    token: \${T}
    forms: [aForm]
    webhook: { hmac: { secret: "\${HOOK_PW}" } }
  - id: kobo-nohook
    kind: kobo
    baseUrl: http://127.0.0.1:9
    token: \${T}
    forms: [aForm]
  - id: odk-test
    kind: odk
    baseUrl: http://127.0.0.1:9
    projectId: 1
    forms: "*"
    auth: { session: { email: a@b.c, password: "\${T}" } }
`,
    'test.yaml',
    { T: 'x', HOOK_PW: HOOK.password },
  );
}

let kobo: KoboSimulator;
let records: KoboRecord[];
beforeAll(async () => {
  kobo = await startKoboSimulator({ submissions: 5, seed: 3 });
  records = kobo.records(kobo.assetUids[0]!);
});
afterAll(async () => {
  await kobo?.close();
});

describe.each<Dialect>(['postgresql', 'mysql'])('Kobo REST Service → Submission on %s', (dialect) => {
  let h: Harness;
  let server: Server;
  let url: string;

  beforeAll(async () => {
    h = await openHarness(dialect);
    h.startLoader({ config: config() });
    const app = createIngressApp({ config: config(), queues: h.queues, redis: h.redis, log, metrics: createMetrics() });
    server = await new Promise((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/kobo-test`;
  });
  afterAll(async () => {
    server?.close();
    await h?.close();
  });

  const row = (r: KoboRecord) =>
    h.db.prisma.submission.findUnique({ where: { sourceId_formId_key: { sourceId: 'kobo-test', formId: String(r._xform_id_string), key: String(r._id) } } });

  it('a POST lands as one row with the JSON intact', async () => {
    const r = records[0]!;
    const res = await sendKoboRestService(r, { url, auth: HOOK, retryDelaysMs: [] });
    expect(res.ok).toBe(true);
    expect(res.status).toBe(202);
    await drained(h.queues.ingest);
    const stored = await row(r);
    expect(stored).not.toBeNull();
    expect(stored!.data).toEqual(r);
    expect(stored!.version).toBe(r['meta/instanceID']);
    expect(stored!.via).toBe('webhook');
    expect(stored!.submittedAt.toISOString()).toBe(`${r._submission_time}.000Z`);
  });

  it('concurrent POSTs of one form share ingest jobs; each 202 names a job holding its record, and every row lands', async () => {
    // 60 distinct records of two forms, sent at once.
    const sent = Array.from({ length: 60 }, (_, i) => ({
      ...records[i % records.length]!, _id: 900_000 + i, 'meta/instanceID': `uuid:burst-${i}`, _xform_id_string: i % 2 ? 'burstA' : 'burstB',
    }));
    const base = url.replace(/\/webhooks\/.*/, '');
    // Redis slow for the first batch: the requests that arrive meanwhile queue up behind it and go as the next batch.
    let calls = 0;
    const undo = onQueueWrites(h.queues.ingest, async () => {
      if (calls++ === 0) await new Promise((r) => setTimeout(r, 500));
    });
    const post = (r: object) => request(base).post('/webhooks/kobo-test').auth(HOOK.username, HOOK.password).send(r);
    const answers = await Promise.all(sent.map(post)).finally(undo);
    expect(answers.map((a) => a.status)).toEqual(sent.map(() => 202));
    const ids = answers.map((a) => String((a.body as { jobId: string }).jobId));
    const jobs = new Map(await Promise.all([...new Set(ids)].map(async (id) => [id, await h.queues.ingest.getJob(id)] as const)));
    sent.forEach((r, i) => {
      const held = (jobs.get(ids[i]!)?.data as { submissions: { key: string; formId: string }[] }).submissions;
      expect(held.map((s) => s.key)).toContain(String(r._id));
      // A shared job holds one form's records.
      expect(new Set(held.map((s) => s.formId))).toEqual(new Set([r._xform_id_string]));
    });
    expect(jobs.size).toBeLessThan(sent.length);
    await drained(h.queues.ingest);
    for (const r of sent) expect((await row(r as KoboRecord))?.data).toEqual(r);
  });

  it('the same POST delivered 3 times leaves one unchanged row', async () => {
    const r = records[1]!;
    await sendKoboRestService(r, { url, auth: HOOK, retryDelaysMs: [] });
    await drained(h.queues.ingest);
    const first = await row(r);
    for (let i = 0; i < 2; i++) expect((await sendKoboRestService(r, { url, auth: HOOK, retryDelaysMs: [] })).status).toBe(202);
    await drained(h.queues.ingest);
    expect(await h.db.prisma.submission.count({ where: { key: String(r._id) } })).toBe(1);
    expect(await row(r)).toEqual(first);
  });

  it('a payload_template body lands as the record alone; an XML body lands in the JSON shape', async () => {
    const [a, b] = [records[2]!, records[3]!];
    const wrapped = await sendKoboRestService(a, { url, auth: HOOK, retryDelaysMs: [], payloadTemplate: '{"source": "kf", "submission": %SUBMISSION%}' });
    expect(wrapped.status).toBe(202);
    const xml = await sendKoboRestService(b, { url, auth: HOOK, retryDelaysMs: [], exportType: 'xml' });
    expect(xml.status).toBe(202);
    await drained(h.queues.ingest);
    expect((await row(a))!.data).toEqual(a);
    // No _id in the instance XML: keyed on meta/rootUuid.
    const x = await h.db.prisma.submission.findUnique({ where: { sourceId_formId_key: { sourceId: 'kobo-test', formId: String(b._xform_id_string), key: String(b['meta/rootUuid']) } } });
    expect(x!.data).toMatchObject({ 'meta/instanceID': b['meta/instanceID'], _xform_id_string: b._xform_id_string, 'household/respondent_age': b['household/respondent_age'] });
    expect(x!.version).toBe(b['meta/instanceID']);
  });

  it('the depth limit is the same on both databases: 31 levels load, 32 are refused at the door with a 400 that says so', async () => {
    const base = url.replace(/\/webhooks\/.*/, '');
    // The record is level 1; `deep` adds levels 2..n.
    const at = (levels: number, id: number) => {
      let deep: unknown = {};
      for (let i = 2; i < levels; i++) deep = { d: deep };
      return { ...records[4]!, _id: id, 'meta/instanceID': `uuid:deep-${id}`, deep };
    };
    const ok = await request(base).post('/webhooks/kobo-test').auth(HOOK.username, HOOK.password).send(at(31, 9_031));
    expect(ok.status).toBe(202);
    const refused = await request(base).post('/webhooks/kobo-test').auth(HOOK.username, HOOK.password).send(at(32, 9_032));
    expect(refused.status).toBe(400);
    expect(refused.body).toEqual({ error: 'too_deep', message: 'JSON nests deeper than 31 levels (objects and arrays), the most fieldsync stores' });
    await drained(h.queues.ingest);
    expect(await row(at(31, 9_031) as KoboRecord)).not.toBeNull();
    expect(await h.db.prisma.deadLetter.count({ where: { jobName: 'ingest-batch' } })).toBe(0);
  });

  it('a top-level __proto__ key is stored with every other key', async () => {
    const r = { ...records[4]!, _id: 9_001, 'meta/instanceID': 'uuid:proto-1' };
    const body = `{"__proto__": {"isAdmin": true}, ${JSON.stringify(r).slice(1, -1)}}`;
    const res = await request(url.replace(/\/webhooks\/.*/, '')).post('/webhooks/kobo-test').auth(HOOK.username, HOOK.password).set('content-type', 'application/json').send(body);
    expect(res.status).toBe(202);
    await drained(h.queues.ingest);
    const stored = await row(r);
    expect(Object.keys(stored!.data as object)).toContain('__proto__');
    expect(JSON.parse(JSON.stringify(stored!.data))).toEqual(JSON.parse(body));
  });

  it('a body no parser understands: 202, then a DeadLetter row with its raw body, readable as JSON in SQL', async () => {
    const body = '{"hello": "world", "nul": "a\\u0000b"}';
    const res = await request(url.replace(/\/webhooks\/.*/, '')).post('/webhooks/kobo-test').auth(HOOK.username, HOOK.password).set('content-type', 'application/json').send(body);
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ accepted: 0, kept: true });
    expect(res.body.reason).toMatch(/missing/);
    const dl = await until(() => h.db.prisma.deadLetter.findFirst({ where: { jobId: String(res.body.jobId) } }), (v) => v !== null);
    expect(dl!.error).toMatch(/^webhook body not understood: missing/);
    expect(decodeDeadLetterPayload(dl!.payload)).toMatchObject({ sourceId: 'kobo-test', body, contentType: 'application/json' });
    const sql = dialect === 'postgresql'
      ? await h.db.prisma.$queryRawUnsafe<{ v: string }[]>(`SELECT (payload::jsonb)->>'body' AS v FROM "DeadLetter" WHERE id = ${dl!.id}`)
      : await h.db.prisma.$queryRawUnsafe<{ v: string }[]>(`SELECT JSON_VALID(payload) AS ok, JSON_UNQUOTE(JSON_EXTRACT(payload, '$.body')) AS v FROM DeadLetter WHERE id = ${dl!.id}`);
    expect(sql[0]!.v).toBe(body);
    // The loader writes the row first, then the queue copy: wait for that too.
    expect(await until(() => h.queues.deadLetter.count(), (n) => n >= 1)).toBeGreaterThanOrEqual(1);
  });
});

describe('webhook refusals', () => {
  const settings = testQueueSettings();
  let redis: Redis;
  let queues: Queues;
  let app: ReturnType<typeof createIngressApp>;
  let roomy: ReturnType<typeof createIngressApp>;
  let metrics: ReturnType<typeof createMetrics>;

  beforeAll(async () => {
    redis = createRedis(settings.redisUrl, 'producer');
    queues = createQueues(settings, redis);
    metrics = createMetrics();
    app = createIngressApp({ config: config(), queues, redis, log, metrics, bodyLimit: '2kb', admin: { user: 'ops', password: 'ops-pw' } });
    roomy = createIngressApp({ config: config(), queues, redis, log, metrics: createMetrics() });
  });
  afterAll(async () => {
    await queues?.close();
    redis?.disconnect();
    await dropQueuePrefix(settings);
  });

  const auth = `Basic ${Buffer.from(`${HOOK.username}:${HOOK.password}`).toString('base64')}`;
  const small = () => ({ _id: 1, _xform_id_string: 'aForm', 'meta/instanceID': 'uuid:1', _submission_time: '2026-11-01T10:00:00' });

  it.each([
    ['malformed JSON', 400, 'malformed_json', () => request(app).post('/webhooks/kobo-test').set('authorization', auth).set('content-type', 'application/json').send('{"_id": 1,')],
    ['JSON nested 32 deep', 400, 'too_deep', () => request(app).post('/webhooks/kobo-test').set('authorization', auth).set('content-type', 'application/json').send('['.repeat(32) + ']'.repeat(32))],
    ['JSON nested 10,000 deep (under a 1 MB limit)', 400, 'too_deep', () => request(roomy).post('/webhooks/kobo-test').set('authorization', auth).set('content-type', 'application/json').send('['.repeat(10_000) + ']'.repeat(10_000))],
    ['malformed XML', 400, 'malformed_xml', () => request(app).post('/webhooks/kobo-test').set('authorization', auth).set('content-type', 'application/xml').send('<a><b></a>')],
    ['unauthenticated XML', 401, 'unauthorized', () => request(app).post('/webhooks/kobo-test').set('content-type', 'application/xml').send('<a/>')],
    ['no credentials', 401, 'unauthorized', () => request(app).post('/webhooks/kobo-test').send(small())],
    ['wrong password', 401, 'unauthorized', () => request(app).post('/webhooks/kobo-test').auth('kobo', 'nope').send(small())],
    ['wrong token', 401, 'unauthorized', () => request(app).post('/webhooks/kobo-token').set('x-fieldsync-token', 'nope').send(small())],
    ['unknown source', 404, 'unknown_source', () => request(app).post('/webhooks/nope').set('authorization', auth).send(small())],
    ['a polled-only ODK source', 404, 'no_webhooks', () => request(app).post('/webhooks/odk-test').set('authorization', auth).send(small())],
    ['a source without a webhook secret', 403, 'webhook_disabled', () => request(app).post('/webhooks/kobo-nohook').send(small())],
    ['a body over the limit', 413, 'payload_too_large', () => request(app).post('/webhooks/kobo-test').set('authorization', auth).send({ ...small(), big: 'x'.repeat(5000) })],
    ['a form body', 415, 'unsupported_media_type', () => request(app).post('/webhooks/kobo-test').set('authorization', auth).type('form').send('a=1')],
    ['no content type', 415, 'unsupported_media_type', () => request(app).post('/webhooks/kobo-test').set('authorization', auth).send(Buffer.from('{}'))],
  ])('%s → %i with a JSON error, nothing enqueued', async (_name, status, code, send) => {
    const res = await send();
    expect(res.status).toBe(status);
    expect(res.headers['content-type']).toMatch(/application\/json/);
    expect(res.body.error).toBe(code);
    expect(typeof res.body.message).toBe('string');
    expect(await queues.ingest.count()).toBe(0);
  });

  it.each([
    ['not a Kobo record', () => request(app).post('/webhooks/kobo-test').set('authorization', auth).send({ hello: 'world' }), /missing/],
    ['a JSON string', () => request(app).post('/webhooks/kobo-test').set('authorization', auth).set('content-type', 'application/json').send('"x"'), /must be a JSON object/],
    ['XML that is not a submission', () => request(app).post('/webhooks/kobo-test').set('authorization', auth).set('content-type', 'text/xml').send('<note><to>x</to></note>'), /no id attribute/],
    ['a template whose recordPath is missing', () => request(app).post('/webhooks/kobo-wrapped').set('authorization', auth).send({ submission: small() }), /recordPath "envelope.record"/],
  ])('%s, from an authenticated sender → 202, kept whole for the dead letters', async (_name, send, reason) => {
    const res = await send();
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ accepted: 0, kept: true });
    expect(res.body.reason).toMatch(reason);
    const [job] = await queues.ingest.getJobs(['waiting']);
    expect(job!.name).toBe('unparsed-webhook');
    expect(job!.data).toMatchObject({ sourceId: expect.stringMatching(/^kobo-/), reason: res.body.reason });
    expect(typeof job!.data.body).toBe('string');
    expect(job!.opts.attempts).toBe(config().ingest.attempts);
    await queues.ingest.obliterate({ force: true });
  });

  it('a template body is unwrapped at the configured recordPath', async () => {
    const res = await request(app).post('/webhooks/kobo-wrapped').set('authorization', auth).send({ source: 'kf', envelope: { record: small() } });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ accepted: 1, keys: ['1'] });
    const [job] = await queues.ingest.getJobs(['waiting']);
    expect(job!.data.submissions[0].data).toEqual(small());
    await queues.ingest.obliterate({ force: true });
  });

  it('an XML submission body is parsed at the door', async () => {
    const xml = koboSubmissionXml({ ...small(), __version__: 'v1', 'grp/q': 'a' });
    const res = await request(app).post('/webhooks/kobo-test').set('authorization', auth).set('content-type', 'application/xml').send(xml);
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ accepted: 1, keys: ['uuid:1'] });
    await queues.ingest.obliterate({ force: true });
  });

  it('while draining, every answer says Connection: close and readiness fails', async () => {
    let draining = false;
    const d = createIngressApp({ config: config(), queues, redis, log, metrics: createMetrics(), draining: () => draining });
    expect((await request(d).get('/readyz')).status).toBe(200);
    draining = true;
    expect((await request(d).get('/readyz')).status).toBe(503);
    const res = await request(d).post('/webhooks/kobo-test').set('authorization', auth).send(small());
    expect(res.status).toBe(202);
    expect(res.headers.connection).toBe('close');
    await queues.ingest.obliterate({ force: true });
  });

  it('a token-header source accepts the right token', async () => {
    const res = await request(app).post('/webhooks/kobo-token').set('x-fieldsync-token', HOOK.password).send(small());
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ accepted: 1, keys: ['1'] });
    expect(await queues.ingest.count()).toBe(1);
    await queues.ingest.obliterate({ force: true });
  });

  it('an HMAC source accepts a body signed with its secret and refuses a tampered one', async () => {
    const body = JSON.stringify(small());
    const sign = (b: string) => `sha256=${createHmac('sha256', HOOK.password).update(b).digest('hex')}`;
    const ok = await request(app).post('/webhooks/kobo-hmac').set('content-type', 'application/json').set('x-fieldsync-signature', sign(body)).send(body);
    expect(ok.status).toBe(202);
    const tampered = body.replace('uuid:1', 'uuid:2');
    const bad = await request(app).post('/webhooks/kobo-hmac').set('content-type', 'application/json').set('x-fieldsync-signature', sign(body)).send(tampered);
    expect(bad.status).toBe(401);
    expect(bad.body.error).toBe('bad_signature');
    expect(await queues.ingest.count()).toBe(1);
    await queues.ingest.obliterate({ force: true });
  });

  it('never logs a webhook secret', async () => {
    const lines: string[] = [];
    const destination = new Writable({ write(c, _e, cb) { lines.push(String(c)); cb(); } });
    const loud = createIngressApp({ config: config(), queues, redis, log: createLogger('t', { level: 'trace', destination }), metrics: createMetrics() });
    await request(loud).post('/webhooks/kobo-test').auth('kobo', 'a-wrong-guess').send(small());
    await request(loud).post('/webhooks/kobo-token').set('x-fieldsync-token', 'another-guess').send(small());
    expect(lines.length).toBeGreaterThan(0);
    const out = lines.join('');
    for (const s of [HOOK.password, 'a-wrong-guess', 'another-guess', Buffer.from('kobo:a-wrong-guess').toString('base64')]) expect(out).not.toContain(s);
  });

  it('health, readiness and metrics', async () => {
    expect((await request(app).get('/healthz')).body).toEqual({ status: 'ok' });
    expect((await request(app).get('/readyz')).status).toBe(200);
    const m = await request(app).get('/metrics');
    expect(m.text).toMatch(/fieldsync_webhook_requests_total\{source="kobo-test",status="401"\} 3/);
    expect(m.text).toMatch(/fieldsync_webhook_submissions_enqueued_total\{source="kobo-token"\} 1/);
    expect(m.text).toMatch(/fieldsync_webhook_errors_total\{source="unknown",reason="unknown_source"\} 1/);
    expect(m.text).toMatch(/fieldsync_webhook_errors_total\{source="kobo-test",reason="too_deep"\} 1/);
    expect(m.text).toMatch(/fieldsync_webhook_unparsed_total\{source="kobo-test"\} 3/);
  });

  it('the dashboard needs its own credentials', async () => {
    expect((await request(app).get('/admin')).status).toBe(401);
    expect((await request(app).get('/admin').auth('kobo', HOOK.password)).status).toBe(401);
    const ok = await request(app).get('/admin').auth('ops', 'ops-pw');
    expect(ok.status).toBe(200);
    expect(ok.text).toMatch(/<html/i);
  });

  it('Redis down: a webhook gets 503 with Retry-After (Kobo retries 503), readiness fails, nothing is claimed', async () => {
    const deadSettings = { redisUrl: 'redis://127.0.0.1:1', prefix: settings.prefix };
    const dead = createRedis(deadSettings.redisUrl, 'producer', { retryStrategy: () => null });
    dead.on('error', () => {});
    const deadQueues = createQueues(deadSettings, dead, () => {});
    const offline = createIngressApp({ config: config(), queues: deadQueues, redis: dead, log, metrics: createMetrics() });
    try {
      const res = await request(offline).post('/webhooks/kobo-test').set('authorization', auth).send(small());
      expect(res.status).toBe(503);
      expect(res.headers['retry-after']).toBe('30');
      expect(res.body.error).toBe('queue_unavailable');
      expect((await request(offline).get('/readyz')).status).toBe(503);
    } finally {
      await deadQueues.close().catch(() => {});
      dead.disconnect();
    }
  });

  it('the dashboard is off without credentials configured', async () => {
    const noAdmin = createIngressApp({ config: config(), queues, redis, log, metrics: createMetrics() });
    expect((await request(noAdmin).get('/admin')).status).toBe(404);
  });
});
