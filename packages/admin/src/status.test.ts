/** collectStatus from the import log as the poller writes it: errors, discovered forms, running runs, dead letters. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '@fieldsync/config';
import { finishRun, recordDeadLetter, saveCursor, startRun } from '@fieldsync/db';
import { scheduleDiscoveredForms, syncSchedules } from '@fieldsync/sync';
import { openHarness, type Harness } from '@fieldsync/sync/testing';
import { collectStatus, statusResponse } from './status.ts';
import { StatusResponse } from './schemas.ts';

const config = parseConfig(
  JSON.stringify({
    sources: [
      { id: 'odk', kind: 'odk', baseUrl: 'http://127.0.0.1:9', projectId: 1, forms: '*', auth: { session: { email: 'a@b.c', password: '${P}' } }, poll: { cron: '0 4 * * *', tz: 'UTC' }, sweep: { cron: '0 5 * * *', tz: 'UTC' } },
      { id: 'kobo', kind: 'kobo', baseUrl: 'http://127.0.0.1:9', token: '${P}', forms: ['k1'], poll: { cron: '0 4 * * *', tz: 'UTC' }, sweep: { cron: '0 5 * * *', tz: 'UTC' } },
    ],
  }),
  'test.json',
  { P: 'x' },
);

describe('collectStatus', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await openHarness('postgresql');
    await syncSchedules(h.queues.poll, config);
    await scheduleDiscoveredForms(h.queues.poll, config.sources[0]!, ['visits']);
  });
  afterAll(async () => {
    await h?.close();
  });

  it('tells the current error, the last success, runs in progress, discovered forms and dead letters', async () => {
    // kobo/k1: an ok poll, then a sweep refused credentials, then a poll still running.
    const ok = await startRun(h.db, 'kobo', 'k1', 'poll', null);
    await finishRun(h.db, ok, { outcome: 'ok', fetched: 5, enqueued: 5, cursorTo: { lastId: 5 } });
    await saveCursor(h.db, 'kobo', 'k1', { lastId: 5 });
    const bad = await startRun(h.db, 'kobo', 'k1', 'sweep', null);
    await finishRun(h.db, bad, { outcome: 'auth_failed', fetched: 0, enqueued: 0, error: 'kobo: 401 Unauthorized — check sources[1].token' });
    await startRun(h.db, 'kobo', 'k1', 'poll', { lastId: 5 });
    // odk: a discovery that worked, a form found by it, and a dead letter of a body with no form.
    const disc = await startRun(h.db, 'odk', '*', 'discover', null);
    await finishRun(h.db, disc, { outcome: 'ok', fetched: 1, enqueued: 0 });
    await recordDeadLetter(h.db, { queue: 'ingest', jobName: 'unparsed-webhook', sourceId: 'odk', payload: { body: '<x/>' }, error: 'not understood', attempts: 1 });
    await recordDeadLetter(h.db, { queue: 'ingest', jobName: 'ingest-batch', sourceId: 'kobo', formId: 'k1', payload: { submissions: [] }, error: 'x', attempts: 8 });

    const [odk, kobo] = await collectStatus({ db: h.db, queues: h.queues, config });
    expect(kobo!.forms).toHaveLength(1);
    const k1 = kobo!.forms[0]!;
    expect(k1.currentError).toMatch(/401 Unauthorized/);
    expect(k1.lastSweep).toMatchObject({ outcome: 'auth_failed' });
    expect(k1.running).toMatchObject({ mode: 'poll', outcome: 'running', durationMs: null });
    expect(k1.lastPoll).toMatchObject({ outcome: 'running' });
    expect(k1.lastSuccessAt).not.toBeNull();
    expect(k1.cursor).toEqual({ lastId: 5 });
    expect(k1.deadLetters).toBe(1);
    expect(k1.nextRun.poll).toMatch(/T04:00:00/);
    expect(k1.nextRun.sweep).toMatch(/T05:00:00/);

    expect(odk!.formsConfigured).toBe('*');
    expect(odk!.forms.map((f) => f.formId)).toEqual(['visits']);
    expect(odk!.forms[0]!.nextRun.poll).not.toBeNull();
    expect(odk!.lastDiscovery).toMatchObject({ outcome: 'ok' });
    expect(odk!.nextDiscovery).not.toBeNull();
    expect(odk!.otherDeadLetters).toBe(1);
    expect(odk!.forms[0]!.currentError).toBeNull();

    // The whole answer is what the OpenAPI document promises.
    StatusResponse.parse(await statusResponse({ db: h.db, queues: h.queues, config }));
  });
});
