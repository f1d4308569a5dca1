/**
 * ODK Central end to end: simulator → OData connector → poll runner → ingest
 * queue → loader → PostgreSQL and MariaDB (issue 9's list).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type FieldsyncConfig, type OdkSourceConfig } from '@fieldsync/config';
import { loadCursor, type Dialect } from '@fieldsync/db';
import { drained } from '@fieldsync/queues/testing';
import { OdkConnector } from '@fieldsync/connectors';
import { startOdkSimulator, HOUSEHOLD_FORM, type OdkSimulator } from '@fieldsync/simulator';
import { syncSchedules } from './schedules.ts';
import { runPoll, type PollMode, type PollProgress } from './poll.runner.ts';
import { openHarness, testLog as log, until, type Harness } from './testing.ts';

const FORM = HOUSEHOLD_FORM.xmlFormId;

function odkConfig(odk: OdkSimulator, forms: string[] | '*', poll = '1h'): FieldsyncConfig {
  return parseConfig(
    JSON.stringify({
      sources: [{
        id: 'odk', kind: 'odk', baseUrl: odk.url, projectId: odk.projectId, forms,
        auth: { session: { email: odk.email, password: '${ODK_PASSWORD}' } },
        pageSize: 1000, poll: { every: poll }, sweep: { cron: '0 3 * * *' },
        http: { timeoutMs: 5000, retries: 4, backoffMs: 50, maxBackoffMs: 2000 },
      }],
    }),
    'test.json',
    { ODK_PASSWORD: odk.password },
  );
}

describe.each<Dialect>(['postgresql', 'mysql'])('ODK Central sync on %s', (dialect) => {
  let h: Harness;
  let odk: OdkSimulator;
  let connector: OdkConnector;
  // A clock the test moves, so timestamps (and their ties) are exact.
  let clock = Date.parse('2026-11-01T08:00:00.000Z');

  beforeAll(async () => {
    h = await openHarness(dialect);
    h.startLoader();
    odk = await startOdkSimulator({ seed: 9, now: () => clock, sessionTtlMs: 3_600_000 });
    odk.seedSubmissions(FORM, 3000, { endAt: clock, stepMs: 1 });
    connector = new OdkConnector(odkConfig(odk, [FORM]).sources[0] as OdkSourceConfig, { logger: log });
  });
  afterAll(async () => {
    await h?.close();
    await odk?.close();
  });

  const poll = async (mode: PollMode, onProgress?: (p: PollProgress) => void) => {
    const s = await runPoll({ db: h.db, queues: h.queues, log, batchSize: 500 }, { connector, formId: FORM, mode, onProgress });
    await drained(h.queues.ingest);
    return s;
  };
  const rows = () => h.db.prisma.submission.count({ where: { sourceId: 'odk', formId: FORM } });
  const row = (id: string) => h.db.prisma.submission.findUniqueOrThrow({ where: { sourceId_formId_key: { sourceId: 'odk', formId: FORM, key: id } } });
  const sessions = () => odk.requests.filter((r) => r.method === 'POST' && r.path === '/v1/sessions').length;

  it('3,000 submissions over pages of 1,000 → 3,000 rows; a poll with nothing new changes nothing and keeps the cursor', async () => {
    const s = await poll('poll');
    expect(s.fetched).toBe(3000);
    expect(await rows()).toBe(3000);
    const cursor = await loadCursor(h.db, 'odk', FORM);
    expect(cursor).not.toBeNull();
    const newest = await h.db.prisma.submission.findFirstOrThrow({ where: { formId: FORM }, orderBy: { updatedAt: 'desc' } });
    const before = await row(newest.key);

    await poll('poll');
    expect(await rows()).toBe(3000);
    expect(await loadCursor(h.db, 'odk', FORM)).toEqual(cursor);
    expect(await row(newest.key)).toEqual(before);
  });

  it('submissions created during a walk, and several sharing the cursor millisecond, all arrive once', async () => {
    clock += 2000; // submissionDate is the server's receive time: always after the last poll
    odk.seedSubmissions(FORM, 1500, { endAt: clock, stepMs: 1 });
    const tie = clock; // the newest timestamp of this walk: the cursor's millisecond
    const during: string[] = [];
    await poll('poll', () => {
      // After the first page is enqueued, more arrive — two of them in the cursor's millisecond.
      if (during.length === 0) during.push(odk.createSubmission(FORM, { at: tie }), odk.createSubmission(FORM, { at: tie }), odk.createSubmission(FORM, { at: tie + 5 }));
    });
    await poll('poll');
    expect(await rows()).toBe(4503);
    for (const id of during) expect((await row(id)).deleted).toBe(false);
  });

  it('an edit → same key, new version, new data; a review-state change shows in the row', async () => {
    const [id] = odk.submissionIds(FORM);
    const before = await row(id!);
    clock += 1000;
    const newVersion = odk.editSubmission(FORM, id!, { notes: 'corrected by supervisor' });
    await poll('poll');
    const edited = await row(id!);
    expect(edited.key).toBe(id);
    expect(edited.version).toBe(newVersion);
    expect(edited.version).not.toBe(before.version);
    expect(edited.data).toMatchObject({ notes: 'corrected by supervisor', __system: { reviewState: 'edited', edits: 1 } });

    clock += 1000;
    odk.setReviewState(FORM, id!, 'approved');
    await poll('poll');
    const reviewed = await row(id!);
    expect(reviewed.version).toBe(newVersion);
    expect(reviewed.data).toMatchObject({ __system: { reviewState: 'approved' } });
    expect(await rows()).toBe(4503);
  });

  it('a deletion marks the row deleted (kept); a restore unmarks it after the sweep', async () => {
    const id = odk.submissionIds(FORM)[10]!;
    clock += 1000;
    odk.deleteSubmission(FORM, id);
    await poll('poll');
    let r = await row(id);
    expect(r.deleted).toBe(true);
    expect(r.deletedAt).not.toBeNull();
    expect(await rows()).toBe(4503);

    odk.restoreSubmission(FORM, id);
    await poll('poll'); // a restore does not touch updatedAt: the incremental poll cannot see it
    expect((await row(id)).deleted).toBe(true);
    await poll('sweep');
    r = await row(id);
    expect(r.deleted).toBe(false);
    expect(r.deletedAt).toBeNull();
  });

  it('repeats with 0, 1 and 5 entries survive the round trip intact', async () => {
    clock += 1000;
    const member = (n: number) => Array.from({ length: n }, (_, i) => ({ member_name: `m${i}`, member_age: 20 + i, member_sex: i % 2 ? 'male' : 'female' }));
    const ids = [0, 1, 5].map((n) => odk.createSubmission(FORM, { answers: { notes: `repeat ${n}`, member: member(n) } }));
    await poll('poll');
    for (const [i, n] of [0, 1, 5].entries()) {
      const data = (await row(ids[i]!)).data as Record<string, unknown>;
      expect(data).toEqual(odk.row(FORM, ids[i]!));
      if (n === 0) expect(data).not.toHaveProperty('member');
      else expect((data.member as unknown[]).length).toBe(n);
    }
  });

  it('the session expiring mid-backfill costs one re-login; the backfill loads every row', async () => {
    const logins = sessions();
    let expired = false;
    const s = await poll('backfill', () => {
      if (!expired) {
        expired = true;
        odk.expireSessions();
      }
    });
    expect(sessions() - logins).toBe(1);
    const live = odk.submissionIds(FORM).length;
    expect(s.fetched).toBeGreaterThanOrEqual(live);
    expect(await h.db.prisma.submission.count({ where: { formId: FORM, deleted: false } })).toBe(live);
  });

  it('429 with Retry-After, then 503 once: the poll completes', async () => {
    clock += 1000;
    const id = odk.createSubmission(FORM);
    odk.failNext({ status: 429, retryAfterS: 1 }, { status: 503 });
    const before = odk.requests.length;
    await poll('poll');
    expect(odk.requests.slice(before).filter((r) => r.status === 429 || r.status === 503)).toHaveLength(2);
    expect((await row(id)).deleted).toBe(false);
  });
});

describe.each<Dialect>(['postgresql', 'mysql'])('a whole-project ODK source on %s', (dialect) => {
  let h: Harness;
  let odk: OdkSimulator;

  beforeAll(async () => {
    h = await openHarness(dialect);
    odk = await startOdkSimulator({ seed: 4, submissions: 20 });
  });
  afterAll(async () => {
    await h?.close();
    await odk?.close();
  });

  it('syncs a form published after start-up without a restart', async () => {
    const config = odkConfig(odk, '*', '500ms');
    await syncSchedules(h.queues.poll, config);
    h.startPoller(config);
    h.startLoader();
    const waitFor = (where: object, n: number) => until(() => h.db.prisma.submission.count({ where }), (c) => c >= n);
    expect(await waitFor({ formId: FORM }, 20)).toBe(20);

    odk.publishForm({ ...HOUSEHOLD_FORM, xmlFormId: 'market_prices', name: 'Market prices' });
    odk.seedSubmissions('market_prices', 12);
    expect(await waitFor({ formId: 'market_prices' }, 12)).toBe(12);
  });
});
