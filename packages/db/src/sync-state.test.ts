import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './testing.ts';
import { finishRun, loadCursor, progressRun, resetCursor, saveCursor, startRun } from './sync-state.ts';
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
});
