import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CanonicalSubmission } from '@fieldsync/model';
import { makeSubmission } from '@fieldsync/model/testing';
import { createTestDatabase, type TestDatabase } from './testing.ts';
import { upsertSubmissions } from './submissions.ts';
import { openStoredIndex, type StoredIndex, type StoredVersion } from './stored-index.ts';
import type { Dialect } from './dialect.ts';

const row = (formId: string, key: string, over: Partial<CanonicalSubmission> = {}): CanonicalSubmission =>
  makeSubmission({ formId, key, version: `v-${key}`, updatedAt: '2026-11-01T10:00:00.000Z', submittedAt: '2026-11-01T09:00:00.000Z', observedAt: '2026-11-01T10:00:01.000Z', data: { k: key }, ...over });

async function chunksOf(index: StoredIndex, opts?: { keys?: 'non-numeric' }): Promise<StoredVersion[][]> {
  const out: StoredVersion[][] = [];
  for await (const c of index.live(opts)) out.push(c);
  return out;
}

describe.each<Dialect>(['postgresql', 'mysql'])('stored index on %s', (dialect) => {
  let t: TestDatabase;
  // 23 live numeric keys, 3 uuid keys (one deleted), 2 keys differing only in case, 4 deleted numeric keys.
  const live = [...Array.from({ length: 23 }, (_, i) => String(i + 1)), 'uuid:a', 'uuid:b', 'K', 'k'];
  beforeAll(async () => {
    t = await createTestDatabase(dialect);
    await upsertSubmissions(t.db, [
      ...live.map((k) => row('f', k)),
      row('f', 'uuid:gone', { deleted: true, deletedAt: '2026-11-01T10:00:01.000Z' }),
      ...['24', '25', '26', '27'].map((k) => row('f', k, { deleted: true, deletedAt: '2026-11-01T10:00:01.000Z' })),
      // Another form and another source with the same keys: never read.
      ...live.map((k) => row('other', k)),
      ...live.map((k) => row('f', k, { sourceId: 'odk' })),
    ]);
  });
  afterAll(async () => { await t?.drop(); });

  it('streams every live row of the form once, in chunks no larger than asked', async () => {
    const index = await openStoredIndex(t.db, 'kobo', 'f', { chunk: 4 });
    const chunks = await chunksOf(index);
    expect(chunks.length).toBe(Math.ceil(live.length / 4));
    expect(chunks.every((c) => c.length > 0 && c.length <= 4)).toBe(true);
    const keys = chunks.flat().map((s) => s.key);
    expect([...keys].sort()).toEqual([...live].sort());
    expect(new Set(keys).size).toBe(keys.length);
    expect(chunks.flat().every((s) => !s.deleted)).toBe(true);
    const one = chunks.flat().find((s) => s.key === '7')!;
    expect(one).toEqual({ key: '7', version: 'v-7', updatedAt: new Date('2026-11-01T10:00:00.000Z'), submittedAt: new Date('2026-11-01T09:00:00.000Z'), deleted: false });
  });

  it('a form with exactly a chunk of rows, or none, ends cleanly', async () => {
    expect((await chunksOf(await openStoredIndex(t.db, 'kobo', 'f', { chunk: live.length }))).map((c) => c.length)).toEqual([live.length]);
    expect(await chunksOf(await openStoredIndex(t.db, 'kobo', 'nothing-here'))).toEqual([]);
  });

  it('reads only the keys that are not all digits when asked', async () => {
    const chunks = await chunksOf(await openStoredIndex(t.db, 'kobo', 'f', { chunk: 2 }), { keys: 'non-numeric' });
    expect(chunks.flat().map((s) => s.key).sort()).toEqual(['K', 'k', 'uuid:a', 'uuid:b']);
  });

  it('looks up present, deleted and absent keys, in chunks', async () => {
    const index = await openStoredIndex(t.db, 'kobo', 'f', { chunk: 3 });
    const asked = ['1', '2', '24', 'uuid:gone', 'K', 'absent', '999', '5', '6', '7'];
    const m = await index.lookup(asked);
    expect([...m.keys()].sort()).toEqual(['1', '2', '24', '5', '6', '7', 'K', 'uuid:gone']);
    expect(m.get('24')).toMatchObject({ key: '24', version: 'v-24', deleted: true });
    expect(m.get('K')!.key).toBe('K'); // not 'k': keys are compared exactly
    expect((await index.lookup([])).size).toBe(0);
  });

  it('leaves out of live() the rows stored after it was opened; lookup sees them', async () => {
    const index = await openStoredIndex(t.db, 'kobo', 'late', { chunk: 2 });
    await upsertSubmissions(t.db, [row('late', 'new-1'), row('late', '100')]);
    expect(await chunksOf(index)).toEqual([]);
    expect([...(await index.lookup(['new-1', '100'])).keys()].sort()).toEqual(['100', 'new-1']);
    // Rows stored before it stay in, even when updated (an update keeps the row's id).
    await upsertSubmissions(t.db, [row('late', '100', { version: 'v-2', updatedAt: '2026-11-02T00:00:00.000Z' })]);
    const later = await openStoredIndex(t.db, 'kobo', 'late');
    await upsertSubmissions(t.db, [row('late', '100', { version: 'v-3', updatedAt: '2026-11-03T00:00:00.000Z' })]);
    expect((await chunksOf(later)).flat().map((s) => [s.key, s.version]).sort()).toEqual([['100', 'v-3'], ['new-1', 'v-new-1']]);
  });

  it('carries the value at the probe path, as text, and refuses a path that is not plain keys', async () => {
    await upsertSubmissions(t.db, [
      row('probe', 'a', { data: { _validation_status: { uid: 'validation_status_approved' } } }),
      row('probe', 'b', { data: { _validation_status: {} } }),
      row('probe', 'c', { data: { _validation_status: { uid: "it's \"quoted\"" } } }),
      row('probe', 'd', { data: { _validation_status: { uid: null } } }),
    ]);
    const index = await openStoredIndex(t.db, 'kobo', 'probe', { probe: ['_validation_status', 'uid'], chunk: 3 });
    const want = [['a', 'validation_status_approved'], ['b', null], ['c', `it's "quoted"`], ['d', null]];
    expect((await chunksOf(index)).flat().map((s) => [s.key, s.probe]).sort()).toEqual(want);
    expect([...(await index.lookup(['a', 'b', 'c', 'd'])).values()].map((s) => [s.key, s.probe]).sort()).toEqual(want);
    // Without a probe, no probe field at all (a connector then compares versions only).
    expect((await chunksOf(await openStoredIndex(t.db, 'kobo', 'probe'))).flat().every((s) => !('probe' in s))).toBe(true);
    await expect(openStoredIndex(t.db, 'kobo', 'probe', { probe: ["x') OR 1=1 --"] })).rejects.toThrow(/invalid probe path/);
    await expect(openStoredIndex(t.db, 'kobo', 'probe', { probe: [] })).rejects.toThrow(/invalid probe path/);
  });
});
