import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './testing.ts';
import { authFailureStreak, closeStaleRuns, countRunTypedIssues, finishRun, loadCursor, progressRun, resetCursor, saveCursor, startRun } from './sync-state.ts';
import type { Dialect } from './dialect.ts';

describe.each<Dialect>(['postgresql', 'mysql'])('poll cursors and run rows on %s', (dialect) => {
  let t: TestDatabase;
  beforeAll(async () => { t = await createTestDatabase(dialect); });
  afterAll(async () => { await t?.drop(); });

  it('a saved cursor reads back as saved, the newest one wins, a reset forgets it; times are UTC now', async () => {
    expect(await loadCursor(t.db, 'kobo', 'aForm')).toBeNull();
    const first = { lastId: 5, next: 'https://kf.example.org/api/v2/assets/aForm/data/?start=1000&limit=1000', since: '2026-11-01T10:00:00.000Z' };
    await saveCursor(t.db, 'kobo', 'aForm', first);
    expect(await loadCursor(t.db, 'kobo', 'aForm')).toEqual(first);
    const before = Date.now();
    const second = { lastId: 51_754, note: 'enquête "quoted" \\ back\\slash', nested: { ids: [1, 2, 3] } };
    await saveCursor(t.db, 'kobo', 'aForm', second);
    await saveCursor(t.db, 'kobo', 'other', { lastId: 1 });
    expect(await loadCursor(t.db, 'kobo', 'aForm')).toEqual(second);
    const row = await t.db.prisma.syncState.findUniqueOrThrow({ where: { sourceId_formId: { sourceId: 'kobo', formId: 'aForm' } } });
    expect(Math.abs(row.updatedAt.getTime() - before)).toBeLessThan(5_000);
    expect(row.lastRunAt?.getTime()).toBe(row.updatedAt.getTime());
    await resetCursor(t.db, 'kobo', 'aForm');
    expect(await loadCursor(t.db, 'kobo', 'aForm')).toBeNull();
    expect(await loadCursor(t.db, 'kobo', 'other')).toEqual({ lastId: 1 });
  });

  it('a run row records its start, progress and end as given; an end without cursor or error keeps them', async () => {
    const before = Date.now();
    const from = { since: '2026-11-01T10:00:00.000Z', note: 'enquête "quoted"' };
    const id = await startRun(t.db, 'kobo', 'aForm', 'poll', from);
    const other = await startRun(t.db, 'kobo', 'aForm', 'backfill', null);
    expect(other).toBeGreaterThan(id);
    const read = () => t.db.prisma.syncRun.findUniqueOrThrow({ where: { id } });
    let r = await read();
    expect(r).toMatchObject({ sourceId: 'kobo', formId: 'aForm', mode: 'poll', outcome: 'running', fetched: 0, enqueued: 0, cursorFrom: from, cursorTo: null, finishedAt: null, error: null });
    expect(Math.abs(r.startedAt.getTime() - before)).toBeLessThan(5_000);
    expect(r.heartbeatAt?.getTime()).toBe(r.startedAt.getTime());
    expect((await t.db.prisma.syncRun.findUniqueOrThrow({ where: { id: other } })).cursorFrom).toBeNull();
    await new Promise((f) => setTimeout(f, 5));
    await progressRun(t.db, id, { fetched: 1000, enqueued: 990 });
    r = await read();
    expect(r).toMatchObject({ fetched: 1000, enqueued: 990, outcome: 'running' });
    expect(r.heartbeatAt!.getTime()).toBeGreaterThan(r.startedAt.getTime());
    await finishRun(t.db, id, { outcome: 'failed', fetched: 1500, enqueued: 1400, cursorTo: { lastId: 1500 }, error: 'HTTP 503 from kf.example.org' });
    r = await read();
    expect(r).toMatchObject({ outcome: 'failed', fetched: 1500, enqueued: 1400, cursorTo: { lastId: 1500 }, error: 'HTTP 503 from kf.example.org' });
    expect(r.finishedAt?.getTime()).toBe(r.heartbeatAt?.getTime());
    await finishRun(t.db, id, { outcome: 'ok', fetched: 1500, enqueued: 1500 });
    expect(await read()).toMatchObject({ outcome: 'ok', enqueued: 1500, cursorTo: { lastId: 1500 }, error: 'HTTP 503 from kf.example.org' });
  });
  it('closes only silent running runs, in the scope asked, keeping their counts and naming their last sign of life', async () => {
    const silent = await startRun(t.db, 'stale', 'f1', 'backfill', null);
    const preHeartbeat = await startRun(t.db, 'stale', 'f1', 'poll', null);
    const alive = await startRun(t.db, 'stale', 'f1', 'poll', null);
    const done = await startRun(t.db, 'stale', 'f1', 'poll', null);
    const otherForm = await startRun(t.db, 'stale', 'f2', 'poll', null);
    const otherSource = await startRun(t.db, 'stale-b', 'f1', 'poll', null);
    const old = new Date(Date.now() - 10 * 60_000);
    const older = new Date(Date.now() - 20 * 60_000);
    await t.db.prisma.syncRun.updateMany({ where: { id: { in: [silent, done, otherForm, otherSource] } }, data: { heartbeatAt: old, startedAt: older } });
    await t.db.prisma.syncRun.update({ where: { id: preHeartbeat }, data: { heartbeatAt: null, startedAt: older } });
    await progressRun(t.db, silent, { fetched: 3000, enqueued: 2000 });
    await t.db.prisma.syncRun.update({ where: { id: silent }, data: { heartbeatAt: old } });
    await finishRun(t.db, done, { outcome: 'ok', fetched: 1, enqueued: 1 });
    await t.db.prisma.syncRun.update({ where: { id: done }, data: { heartbeatAt: old } });

    const closed = await closeStaleRuns(t.db, { sourceId: 'stale', formId: 'f1', staleAfterMs: 60_000 });
    expect(closed.map((r) => r.id).sort()).toEqual([silent, preHeartbeat].sort());
    expect(closed.find((r) => r.id === silent)).toEqual({ id: silent, sourceId: 'stale', formId: 'f1', mode: 'backfill' });
    const row = (id: bigint) => t.db.prisma.syncRun.findUniqueOrThrow({ where: { id } });
    const s = await row(silent);
    expect(s).toMatchObject({ outcome: 'interrupted', fetched: 3000, enqueued: 2000 });
    expect(s.finishedAt?.getTime()).toBe(old.getTime());
    expect(s.error).toContain(`no heartbeat since ${old.toISOString()}`);
    expect((await row(preHeartbeat)).finishedAt?.getTime()).toBe(older.getTime());
    for (const id of [alive, otherForm, otherSource]) expect((await row(id)).outcome).toBe('running');
    expect((await row(done)).outcome).toBe('ok');
    // Without a scope: every source and form; a fresh heartbeat is still left alone.
    expect((await closeStaleRuns(t.db, { staleAfterMs: 60_000 })).map((r) => r.id).sort()).toEqual([otherForm, otherSource].sort());
    expect((await row(alive)).outcome).toBe('running');
  });

  it('counts the latest auth failures in a row, skipping runs that say nothing about credentials', async () => {
    expect(await authFailureStreak(t.db, 'auth')).toEqual({ count: 0, lastAt: null });
    const run = async (outcome: 'ok' | 'auth_failed' | 'skipped' | 'interrupted' | 'failed') => {
      const id = await startRun(t.db, 'auth', `f-${outcome}`, 'poll', null);
      await finishRun(t.db, id, { outcome, fetched: 0, enqueued: 0 });
      return id;
    };
    await run('auth_failed');
    await run('ok');
    await run('auth_failed');
    await run('skipped');
    await run('interrupted');
    const last = await run('auth_failed');
    await startRun(t.db, 'auth', 'f-running', 'poll', null);
    const streak = await authFailureStreak(t.db, 'auth');
    expect(streak.count).toBe(2);
    expect(streak.lastAt?.getTime()).toBe((await t.db.prisma.syncRun.findUniqueOrThrow({ where: { id: last } })).startedAt.getTime());
    expect((await authFailureStreak(t.db, 'auth', 1)).count).toBe(1);
    await run('failed');
    expect(await authFailureStreak(t.db, 'auth')).toEqual({ count: 0, lastAt: null });
  });

  it('adds unfit values and new type-change notes to a run, each note once', async () => {
    const id = await startRun(t.db, 'typed', 'f', 'backfill', null);
    await countRunTypedIssues(t.db, id, { unfit: 3, typeChanges: ['age: bigint -> text'] });
    await countRunTypedIssues(t.db, id, { unfit: 2, typeChanges: ['age: bigint -> text', 'when: date -> text'] });
    await countRunTypedIssues(t.db, id, { unfit: 0 });
    expect(await t.db.prisma.syncRun.findUniqueOrThrow({ where: { id } })).toMatchObject({ unfitValues: 5, typeChanges: 'age: bigint -> text\nwhen: date -> text' });
  });
});
