/** MySQL's stand-in for RETURNING: which of a batch's copies the Submission rows now hold. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { upsertSubmissions } from '@fieldsync/db';
import { createTestDatabase, type TestDatabase } from '@fieldsync/db/testing';
import type { CanonicalSubmission } from '@fieldsync/model';
import { submission } from './fixtures/forms.ts';
import type { Plan } from './schema.ts';
import { storedCopies } from './write.ts';

describe('storedCopies on MariaDB', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase('mysql');
  });
  afterAll(async () => {
    await t?.drop();
  });

  it('names the copies the rows hold and no other: not a stale copy, not one with other data, times or origin', async () => {
    const plan = { sourceId: 'kobo', formId: 'f' } as Plan;
    const s = (key: string, data: Record<string, unknown>, over: Partial<CanonicalSubmission> = {}) => submission('kobo', 'f', key, { 'meta/instanceID': `uuid:${key}`, ...data }, over);
    const stored = [
      s('1', { q: 'a' }),
      s('2', { q: 'new' }, { version: 'uuid:2b', replaces: 'uuid:2', updatedAt: '2026-11-17T00:00:00.000Z' }),
      s('3', { q: 'full', extra: 1 }),
      s('4', { q: 'a' }, { updatedAt: '2026-11-16T08:00:00.000Z' }),
      s('5', { q: 'a' }),
    ];
    await t.db.transaction((sql) => upsertSubmissions(t.db, stored, sql));
    const batch = [
      stored[0]!, // what the row holds
      s('2', { q: 'old' }), // stale: the row holds its edit
      s('3', { q: 'full' }), // same version, times and origin, other data (a field subset)
      s('4', { q: 'a' }), // same data, another updatedAt
      { ...stored[4]!, via: 'webhook' as const }, // same data, another origin
      s('6', { q: 'never stored' }),
    ];
    const found = await t.db.transaction((sql) => storedCopies(sql, plan, batch));
    expect(found.map((c) => c.key)).toEqual(['1']);
    expect(found[0]!.data).toBe(stored[0]!.data);
  });
});
