import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './testing.ts';
import { loadCursor, resetCursor, saveCursor } from './sync-state.ts';
import type { Dialect } from './dialect.ts';

describe.each<Dialect>(['postgresql', 'mysql'])('poll cursors on %s', (dialect) => {
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
});
