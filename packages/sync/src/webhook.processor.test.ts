import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type FieldsyncConfig } from '@fieldsync/config';
import { decodeDeadLetterPayload, recordDeadLetter } from '@fieldsync/db';
import { makeSubmission } from '@fieldsync/model/testing';
import { UnparsedWebhook, type UnparsedWebhookData } from '@fieldsync/queues';
import { drained } from '@fieldsync/queues/testing';
import { openHarness, until, type Harness } from './testing.ts';
import { replayDeadLetters } from './replay.ts';

const config = (recordPath?: string): FieldsyncConfig =>
  parseConfig(
    JSON.stringify({
      sources: [{ id: 'kobo', kind: 'kobo', baseUrl: 'http://127.0.0.1:9', token: '${T}', forms: ['aForm'], webhook: { token: '${T}', ...(recordPath ? { recordPath } : {}) } }],
      ingest: { attempts: 3, backoffMs: 100 },
    }),
    't.json',
    { T: 'x' },
  );

const record = { _id: 7, _xform_id_string: 'aForm', 'meta/instanceID': 'uuid:7', _submission_time: '2026-11-20T10:00:00', q: 'a' };
const kept = (body: unknown, sourceId = 'kobo'): UnparsedWebhookData => ({
  sourceId, contentType: 'application/json', body: JSON.stringify(body), reason: 'not understood on arrival', receivedAt: '2026-11-20T10:00:05.000Z', hints: {},
});

describe('kept webhook bodies in the loader', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await openHarness('postgresql');
  });
  afterAll(async () => {
    await h?.close();
  });

  it('a body the loader cannot read either is dead-lettered at once (one attempt), raw body and reason kept; replay re-reads it with the new config', async () => {
    const body = { envelope: { deep: { record } } };
    const loader = h.startLoader({ config: config() });
    const job = await h.queues.ingest.add(UnparsedWebhook.name, kept(body), { attempts: 5 });
    const dl = await until(() => h.db.prisma.deadLetter.findFirst({ where: { jobId: job.id! } }), (v) => v !== null);
    expect(dl).toMatchObject({ jobName: 'unparsed-webhook', sourceId: 'kobo', attempts: 1 });
    expect(dl!.error).toMatch(/^webhook body not understood: missing/);
    expect((decodeDeadLetterPayload(dl!.payload) as UnparsedWebhookData).body).toBe(JSON.stringify(body));
    await drained(h.queues.ingest);
    expect(await (await h.queues.ingest.getJob(job.id!))!.getState()).toBe('completed');
    expect(await h.queues.deadLetter.count()).toBe(1);

    // A config change: the record's path is named. Replay with the configured retry policy.
    await loader.close();
    h.startLoader({ config: config('envelope.deep.record') });
    expect(await replayDeadLetters(h.db, h.queues, { ingest: config().ingest })).toBe(1);
    const row = await until(() => h.db.prisma.submission.findFirst({ where: { key: '7' } }), (v) => v !== null);
    expect(row!.data).toEqual(record);
    const jobs = await h.queues.ingest.getJobs(['completed']);
    const replayed = jobs.filter((j) => j.timestamp >= dl!.failedAt.getTime());
    expect(replayed.map((j) => [j.name, j.opts.attempts]).sort()).toEqual([['ingest-batch', 3], ['unparsed-webhook', 3]]);
    expect(await h.queues.deadLetter.count()).toBe(0);
  });

  it('a body for a source no longer configured is dead-lettered saying so', async () => {
    const job = await h.queues.ingest.add(UnparsedWebhook.name, kept(record, 'gone'));
    const dl = await until(() => h.db.prisma.deadLetter.findFirst({ where: { jobId: job.id! } }), (v) => v !== null);
    expect(dl!.error).toBe('webhook body not understood: source "gone" is not configured (was: not understood on arrival)');
  });

  it('replayed batches retry as configured (ingest.attempts), not with the catalog default', async () => {
    const sub = makeSubmission({ sourceId: 'kobo', formId: 'aForm', key: '8', version: 'uuid:8' });
    const id = await recordDeadLetter(h.db, { queue: 'ingest', jobName: 'ingest-batch', payload: { submissions: [sub] }, error: 'x', attempts: 8 });
    const before = Date.now();
    expect(await replayDeadLetters(h.db, h.queues, { ids: [id], ingest: { attempts: 3, backoffMs: 100 } })).toBe(1);
    const jobs = [...(await h.queues.ingest.getJobs(['waiting', 'active', 'completed']))].filter((j) => j.name === 'ingest-batch' && j.timestamp >= before);
    expect(jobs.map((j) => [j.opts.attempts, (j.opts.backoff as { delay: number }).delay])).toEqual([[3, 100]]);
  });

  it('an XML body is read with the stored form definition\'s repeats: a one-entry repeat is an array, as in Kobo\'s JSON', async () => {
    const definition = {
      sourceId: 'kobo', formId: 'aForm', version: 'vX', title: 't', shape: 'kobo', languages: [], choices: [],
      fields: [{ name: 'household', path: ['household'], type: 'group', sourceType: 'begin_group', labels: {}, children: [
        { name: 'members', path: ['household', 'members'], type: 'repeat', sourceType: 'begin_repeat', labels: {}, children: [
          { name: 'member_name', path: ['household', 'members', 'member_name'], type: 'text', sourceType: 'text', labels: {} },
        ] },
      ] }],
    };
    await h.db.prisma.formSchema.create({ data: { sourceId: 'kobo', formId: 'aForm', version: 'vX', definition, fetchedAt: new Date() } });
    const xml = `<?xml version='1.0' encoding='UTF-8'?>
<aForm id="aForm" version="vX"><household><members><member_name>Only</member_name></members></household><__version__>vX</__version__><meta><instanceID>uuid:x1</instanceID></meta></aForm>`;
    await h.queues.ingest.add(UnparsedWebhook.name, { ...kept({}), contentType: 'application/xml', body: xml, reason: undefined });
    const row = await until(() => h.db.prisma.submission.findFirst({ where: { key: 'uuid:x1' } }), (v) => v !== null);
    expect((row!.data as Record<string, unknown>)['household/members']).toEqual([{ 'household/members/member_name': 'Only' }]);
  });
});
