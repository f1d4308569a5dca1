/**
 * Refused credentials are not transient: one login per scheduled run (no job
 * retries, no HTTP retries), scheduled runs paused with a growing backoff while
 * they keep failing, a SyncRun that names the config key to fix (form discovery
 * included), one log line per run. Also: jobs of a source removed from the config
 * are dropped with one log line, not failed three times.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Worker } from 'bullmq';
import { parseConfig, type FieldsyncConfig } from '@fieldsync/config';
import { createLogger } from '@fieldsync/logger';
import { PollForm } from '@fieldsync/queues';
import { HOUSEHOLD_FORM, startKoboSimulator, startOdkSimulator, type KoboSimulator, type OdkSimulator } from '@fieldsync/simulator';
import { authPauseMs, startPollWorker, type AuthBackoff } from './poll.worker.ts';
import { syncSchedules } from './schedules.ts';
import { openHarness, until, type Harness } from './testing.ts';

const FORM = HOUSEHOLD_FORM.xmlFormId;
const BACKOFF: AuthBackoff = { baseMs: 500, maxMs: 2_000 };
const http = { timeoutMs: 5000, retries: 4, backoffMs: 50, maxBackoffMs: 500 };

describe('refused credentials', () => {
  let h: Harness;
  let odk: OdkSimulator; // sources[0]: explicit forms
  let odkAll: OdkSimulator; // sources[1]: forms "*" (discovery)
  let kobo: KoboSimulator; // sources[2]
  const lines: Record<string, unknown>[] = [];
  const log = createLogger('test', { level: 'info', destination: { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) } });
  let worker: Worker | undefined;

  const config = (odkPassword: string): FieldsyncConfig =>
    parseConfig(
      JSON.stringify({
        sources: [
          { id: 'odk', kind: 'odk', baseUrl: odk.url, projectId: odk.projectId, forms: [FORM], auth: { session: { email: odk.email, password: '${ODK_PASSWORD}' } }, poll: { every: '300ms' }, sweep: { cron: '0 3 * * *' }, http },
          { id: 'odk-all', kind: 'odk', baseUrl: odkAll.url, projectId: odkAll.projectId, forms: '*', auth: { session: { email: odkAll.email, password: '${WRONG}' } }, poll: { every: '300ms' }, sweep: { cron: '0 3 * * *' }, http },
          { id: 'kobo', kind: 'kobo', baseUrl: kobo.url, token: '${WRONG}', forms: [kobo.assetUids[0]], poll: { every: '300ms' }, sweep: { cron: '0 3 * * *' }, http },
        ],
      }),
      'test.json',
      { ODK_PASSWORD: odkPassword, WRONG: 'not-the-password' },
    );
  const logins = (sim: OdkSimulator) => sim.requests.filter((r) => r.method === 'POST' && r.path === '/v1/sessions');
  const runs = (sourceId: string) => h.db.prisma.syncRun.findMany({ where: { sourceId }, orderBy: { id: 'asc' } });

  beforeAll(async () => {
    h = await openHarness('postgresql');
    odk = await startOdkSimulator({ submissions: 30, seed: 3 });
    odkAll = await startOdkSimulator({ submissions: 5, seed: 4 });
    kobo = await startKoboSimulator({ submissions: 10, seed: 8 });
  });
  afterAll(async () => {
    await worker?.close();
    await h?.close();
    await Promise.all([odk?.close(), odkAll?.close(), kobo?.close()]);
  });

  it('one login per scheduled run, scheduled runs paused with a growing backoff, a SyncRun naming the key, one log line per run', async () => {
    const wrong = config('wrong-password');
    await syncSchedules(h.queues.poll, wrong);
    worker = startPollWorker({ settings: h.settings, db: h.db, queues: h.queues, log, config: wrong, authBackoff: BACKOFF });
    // Until each source has been refused three times (≥ 0.5 + 1 s of pauses), however loaded the machine.
    await until(
      () => Promise.all(['odk', 'odk-all', 'kobo'].map((id) => h.db.prisma.syncRun.count({ where: { sourceId: id, outcome: 'auth_failed' } }))),
      (n) => n.every((c) => c >= 3),
      30_000,
    );
    // Stop scheduling and let the runs in flight end (closing now would abort one mid-request).
    for (const sch of await h.queues.poll.getJobSchedulers(0, -1)) await h.queues.poll.removeJobScheduler(sch.key);
    await until(() => h.queues.poll.getActiveCount(), (n) => n === 0, 10_000);
    await worker.close();
    worker = undefined;

    // ODK, explicit forms: every login refused, each one a run of its own.
    const odkRuns = await runs('odk');
    expect(odkRuns.length).toBeGreaterThanOrEqual(3);
    expect(logins(odk).map((r) => r.status)).toEqual(odkRuns.map(() => 401));
    for (const r of odkRuns) {
      expect(r).toMatchObject({ formId: FORM, mode: 'poll', outcome: 'auth_failed' });
      expect(r.error).toBe('ODK login refused: check sources[0].auth.session.email/password (401.2: Could not authenticate with the provided credentials.)');
      expect(r.finishedAt).not.toBeNull();
    }
    // The pause between tries doubles from 500 ms up to 2 s, although a run is scheduled every 300 ms.
    for (let i = 1; i < odkRuns.length; i++) {
      expect(odkRuns[i]!.startedAt.getTime() - odkRuns[i - 1]!.startedAt.getTime()).toBeGreaterThanOrEqual(authPauseMs(i, BACKOFF));
    }

    // Discovery (forms "*") is recorded too.
    const discoveries = await runs('odk-all');
    expect(discoveries.length).toBeGreaterThanOrEqual(3);
    expect(logins(odkAll).map((r) => r.status), 'logins of the discovering source').toEqual(discoveries.map(() => 401));
    for (const r of discoveries) {
      expect(r).toMatchObject({ formId: '*', mode: 'discover', outcome: 'auth_failed' });
      expect(r.error).toBe('ODK login refused: check sources[1].auth.session.email/password (401.2: Could not authenticate with the provided credentials.)');
    }

    // Kobo: one refused request per run.
    const koboRuns = await runs('kobo');
    expect(koboRuns.length).toBeGreaterThanOrEqual(3);
    // (The first request of a run may be the form definition's, not /data/: count the refused ones.)
    expect(kobo.requests.filter((r) => r.status === 401)).toHaveLength(koboRuns.length);
    expect(kobo.requests.every((r) => r.status === 401)).toBe(true);
    for (const r of koboRuns) {
      expect(r.outcome).toBe('auth_failed');
      expect(r.error).toMatch(/^Kobo token refused: check sources\[2\]\.token \(and the environment variable it is read from\) \(401: .*Invalid token/);
    }

    // No job ran twice: a refused credential is not retried until the next scheduled run.
    const failed = await h.queues.poll.getJobs(['failed']);
    expect(failed).toHaveLength(odkRuns.length + discoveries.length + koboRuns.length);
    expect(failed.map((j) => j.attemptsMade)).toEqual(failed.map(() => 1));
    expect((await h.queues.poll.getJobs(['delayed', 'wait'])).filter((j) => j.attemptsMade > 0)).toEqual([]); // no retry pending
    // The runs the pause skipped completed without touching the source.
    const completed = await h.queues.poll.getJobs(['completed']);
    expect(completed.every((j) => (j.returnvalue as { skipped?: string } | null)?.skipped === 'credentials refused recently')).toBe(true);
    expect(completed.length).toBeGreaterThanOrEqual(1);

    // Logs: exactly one line per refused run, none per attempt.
    const refusedLines = lines.filter((l) => /refused by the source: fix the credentials/.test(String(l.msg)));
    expect(refusedLines).toHaveLength(odkRuns.length + discoveries.length + koboRuns.length);
    expect(lines.filter((l) => l.msg === 'poll job failed' || l.msg === 'source request failed; retrying')).toEqual([]);
  });

  it('once the password is fixed, the next scheduled run after the pause logs in and the pause ends', async () => {
    const before = logins(odk).length;
    const fixed = config(odk.password);
    await syncSchedules(h.queues.poll, fixed);
    worker = startPollWorker({ settings: h.settings, db: h.db, queues: h.queues, log, config: fixed, authBackoff: BACKOFF });
    const ok = await until(() => h.db.prisma.syncRun.findMany({ where: { sourceId: 'odk', outcome: 'ok' } }), (r) => r.length >= 2, 10_000);
    expect(ok.length).toBeGreaterThanOrEqual(2); // the pause ended: polls follow one another again
    expect(logins(odk).slice(before).map((r) => r.status)).toEqual([200]); // and share one session
    expect(await h.db.prisma.submission.count({ where: { sourceId: 'odk' } })).toBe(0); // (no loader here: just the poll)
  });

  it('jobs of a source no longer in the config are dropped with one log line each, and their scheduler removed', async () => {
    expect(worker).toBeDefined();
    await h.queues.poll.upsertJobScheduler('poll:gone:x', { every: 60_000 }, { name: PollForm.name, data: { sourceId: 'gone', formId: 'x', mode: 'poll' }, opts: PollForm.options });
    const queued = await h.queues.poll.add(PollForm.name, { sourceId: 'gone', formId: 'y', mode: 'backfill' }, PollForm.options);
    const done = await until(
      async () => (await h.queues.poll.getJobs(['completed', 'failed'])).filter((j) => (j.data as { sourceId: string }).sourceId === 'gone'),
      (j) => j.length >= 2,
      10_000,
    );
    expect(done.map((j) => [j.finishedOn !== undefined, j.failedReason ?? null, j.attemptsMade, j.returnvalue]).sort()).toEqual([
      [true, null, 1, { dropped: 'unknown source "gone"' }],
      [true, null, 1, { dropped: 'unknown source "gone"' }],
    ]);
    expect(done.map((j) => j.id)).toContain(queued.id);
    expect((await h.queues.poll.getJobSchedulers(0, -1)).map((s) => s.key)).not.toContain('poll:gone:x');
    expect(lines.filter((l) => String(l.msg).startsWith('dropped a poll job'))).toHaveLength(2);
  });
});
