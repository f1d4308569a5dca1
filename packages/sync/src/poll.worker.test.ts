import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FieldsyncConfig } from '@fieldsync/config';
import { schedulerId, PollForm } from '@fieldsync/queues';
import { startKoboSimulator, type KoboSimulator } from '@fieldsync/simulator';
import { syncSchedules, scheduleDiscoveredForms } from './schedules.ts';
import { openHarness, koboTestConfig, until, type Harness } from './testing.ts';

describe('scheduled polls', () => {
  let h: Harness;
  let kobo: KoboSimulator;
  let config: FieldsyncConfig;

  beforeAll(async () => {
    h = await openHarness('postgresql');
    kobo = await startKoboSimulator({ submissions: 300, assets: [{}, {}], seed: 5 });
    config = koboTestConfig(kobo, { poll: { every: '700ms' }, sweep: { cron: '0 3 * * *' } });
  });
  afterAll(async () => {
    await h?.close();
    await kobo?.close();
  });

  it('registers one poll and one sweep scheduler per form, and removes those no longer configured', async () => {
    await h.queues.poll.upsertJobScheduler('poll:gone:x', { every: 60_000 }, { name: 'poll-form', data: { sourceId: 'gone', formId: 'x', mode: 'poll' } });
    await syncSchedules(h.queues.poll, config);
    const ids = (await h.queues.poll.getJobSchedulers(0, -1)).map((s) => s.key).sort();
    expect(ids).toEqual(kobo.assetUids.flatMap((f) => [schedulerId('kobo', f, 'poll'), schedulerId('kobo', f, 'sweep')]).sort());
  });

  it('discovery schedules new forms and drops the schedulers of forms that are gone', async () => {
    const source = { ...config.sources[0]!, id: 'disc' };
    const ids = async () => (await h.queues.poll.getJobSchedulers(0, -1)).map((s) => s.key).filter((k) => k.includes(':disc:')).sort();
    await scheduleDiscoveredForms(h.queues.poll, source, ['a', 'b']);
    expect(await ids()).toEqual(['poll:disc:a', 'poll:disc:b', 'sweep:disc:a', 'sweep:disc:b']);
    await scheduleDiscoveredForms(h.queues.poll, source, ['b']);
    expect(await ids()).toEqual(['poll:disc:b', 'sweep:disc:b']);
    await scheduleDiscoveredForms(h.queues.poll, source, []);
    expect(await ids()).toEqual([]);
  });

  it('the scheduled polls load every form without anyone asking, and pick up new submissions', async () => {
    h.startPoller(config);
    h.startLoader();
    const waitRows = (n: number) => until(() => h.db.prisma.submission.count(), (c) => c >= n, 30_000);
    expect(await waitRows(600)).toBe(600);
    kobo.createSubmissions(kobo.assetUids[1]!, 7);
    expect(await waitRows(607)).toBe(607);
    const runs = await h.db.prisma.syncRun.findMany({ where: { outcome: 'ok' } });
    expect(new Set(runs.map((r) => r.formId))).toEqual(new Set(kobo.assetUids));
  });
});

describe('poller shutdown', () => {
  let h: Harness;
  let kobo: KoboSimulator;
  let config: FieldsyncConfig;

  beforeAll(async () => {
    h = await openHarness('postgresql');
    kobo = await startKoboSimulator({ submissions: 10, seed: 6 });
    config = koboTestConfig(kobo, { http: {} }); // default retry policy: the 60 s Retry-After must be aborted, not waited out
  });
  afterAll(async () => {
    await h?.close();
    await kobo?.close();
  });

  it('closing the poller aborts a poll stuck retrying a failing source, without moving its cursor', async () => {
    const [form] = kobo.assetUids;
    const cursorBefore = await h.db.prisma.syncState.findUnique({ where: { sourceId_formId: { sourceId: 'kobo', formId: form! } } });
    kobo.failNext(...Array.from({ length: 10 }, () => ({ status: 503, retryAfterS: 60 })));
    const poller = h.startPoller(config);
    await h.queues.poll.add(PollForm.name, { sourceId: 'kobo', formId: form!, mode: 'poll' }, { attempts: 1 });
    await until(async () => kobo.requests.filter((r) => r.status === 503).length, (n) => n > 0, 10_000);
    const t0 = Date.now();
    await poller.close();
    expect(Date.now() - t0).toBeLessThan(5_000); // not the 60 s Retry-After
    const after = await h.db.prisma.syncState.findUnique({ where: { sourceId_formId: { sourceId: 'kobo', formId: form! } } });
    expect(after?.cursor).toEqual(cursorBefore?.cursor);
    const failed = await h.db.prisma.syncRun.findFirst({ where: { formId: form!, outcome: 'failed' }, orderBy: { id: 'desc' } });
    expect(failed?.error).toMatch(/abort|shutting down/i);
  });
});
