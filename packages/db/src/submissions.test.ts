import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CanonicalSubmission } from '@fieldsync/model';
import { makeSubmission } from '@fieldsync/model/testing';
import { createTestDatabase, type TestDatabase } from './testing.ts';
import { upsertSubmissions, storedVersions } from './submissions.ts';
import { migrate } from './migrate.ts';
import type { Dialect } from './dialect.ts';

const base = (over: Partial<CanonicalSubmission> = {}): CanonicalSubmission =>
  makeSubmission({ formId: 'aForm', updatedAt: '2026-11-01T10:00:00.000Z', submittedAt: '2026-11-01T10:00:00.000Z', observedAt: '2026-11-01T10:00:01.000Z', data: { _id: 1, q: 'first' }, via: 'webhook', ...over });

describe.each<Dialect>(['postgresql', 'mysql'])('bulk upsert on %s', (dialect) => {
  let t: TestDatabase;
  beforeAll(async () => { t = await createTestDatabase(dialect); });
  afterAll(async () => { await t?.drop(); });

  const row = async (key: string, formId = 'aForm') =>
    t.db.prisma.submission.findUniqueOrThrow({ where: { sourceId_formId_key: { sourceId: 'kobo', formId, key } } });

  it('migrations are idempotent', async () => {
    const again = await migrate(t.url);
    expect(again.applied).toEqual([]);
    expect(again.alreadyApplied.length).toBeGreaterThan(0);
  });

  it('re-delivering a version leaves one unchanged row', async () => {
    const s = base({ formId: 'dup' });
    await upsertSubmissions(t.db, [s]);
    const first = await row('1', 'dup');
    await upsertSubmissions(t.db, [s, s]);
    await upsertSubmissions(t.db, [{ ...s, observedAt: '2026-11-02T00:00:00.000Z' }]);
    expect(await t.db.prisma.submission.count({ where: { formId: 'dup' } })).toBe(1);
    expect(await row('1', 'dup')).toEqual(first);
  });

  it('newest wins in any arrival order', async () => {
    const v1 = base({ formId: 'order' });
    const v2 = base({ formId: 'order', version: 'uuid:v2', updatedAt: '2026-11-03T00:00:00.000Z', data: { _id: 1, q: 'edited' } });
    await upsertSubmissions(t.db, [v2]);
    await upsertSubmissions(t.db, [v1]);
    expect((await row('1', 'order')).data).toEqual({ _id: 1, q: 'edited' });
    // both in one batch, old one last
    await upsertSubmissions(t.db, [base({ formId: 'order', key: '2', version: 'b', updatedAt: '2026-11-05T00:00:00.000Z', data: { n: 2 } }), base({ formId: 'order', key: '2', version: 'a', data: { n: 1 } })]);
    expect((await row('2', 'order')).data).toEqual({ n: 2 });
  });

  it('same version with changed data and later updatedAt (a review) is applied', async () => {
    await upsertSubmissions(t.db, [base({ formId: 'review', data: { s: 'received' } })]);
    await upsertSubmissions(t.db, [base({ formId: 'review', updatedAt: '2026-11-04T00:00:00.000Z', data: { s: 'approved' } })]);
    const r = await row('1', 'review');
    expect(r.data).toEqual({ s: 'approved' });
    expect(r.updatedAt.toISOString()).toBe('2026-11-04T00:00:00.000Z');
  });

  it('tombstones mark deleted without losing data; a later observation restores, an earlier one does not', async () => {
    const s = base({ formId: 'del' });
    await upsertSubmissions(t.db, [s]);
    await upsertSubmissions(t.db, [{ ...s, deleted: true, data: {}, observedAt: '2026-11-10T00:00:00.000Z', via: 'sweep' }]);
    let r = await row('1', 'del');
    expect(r.deleted).toBe(true);
    expect(r.data).toEqual(s.data);
    await upsertSubmissions(t.db, [{ ...s, observedAt: '2026-11-09T00:00:00.000Z' }]); // stale job
    expect((await row('1', 'del')).deleted).toBe(true);
    await upsertSubmissions(t.db, [{ ...s, observedAt: '2026-11-11T00:00:00.000Z', via: 'sweep' }]); // restored
    r = await row('1', 'del');
    expect(r.deleted).toBe(false);
    expect(r.deletedAt).toBeNull();
  });

  it('the API copy of a version replaces a webhook copy of it (a field subset), never the other way round', async () => {
    const subset = base({ formId: 'subset', via: 'webhook', data: { _id: 1, q: 'first' } });
    const full = base({ formId: 'subset', via: 'poll', observedAt: '2026-11-01T11:00:00.000Z', data: { _id: 1, q: 'first', other: 'answer', _attachments: [{ filename: 'a.jpg' }] } });
    await upsertSubmissions(t.db, [subset]);
    await upsertSubmissions(t.db, [full]);
    let r = await row('1', 'subset');
    expect(r.data).toEqual(full.data);
    expect(r.via).toBe('poll');
    const afterPoll = r;
    await upsertSubmissions(t.db, [{ ...subset, observedAt: '2026-11-01T12:00:00.000Z' }]); // a late webhook retry
    await upsertSubmissions(t.db, [{ ...full, via: 'sweep', deleted: true, data: {}, observedAt: '2026-11-01T09:00:00.000Z' }]); // a stale tombstone
    r = await row('1', 'subset');
    expect(r).toEqual(afterPoll);
  });

  it('stored versions can carry one value read from the stored JSON', async () => {
    await upsertSubmissions(t.db, [
      base({ formId: 'probe', key: 'a', data: { _validation_status: { uid: 'validation_status_approved', label: 'Approved' } } }),
      base({ formId: 'probe', key: 'b', data: { _validation_status: {} } }),
      base({ formId: 'probe', key: 'c', data: { _validation_status: { uid: "it's \"quoted\"" } } }),
    ]);
    const m = await storedVersions(t.db, 'kobo', 'probe', { probe: ['_validation_status', 'uid'] });
    expect([...m.values()].map((v) => [v.key, v.probe]).sort()).toEqual([['a', 'validation_status_approved'], ['b', null], ['c', `it's "quoted"`]]);
    expect(m.get('a')).toMatchObject({ version: 'uuid:v1', deleted: false });
    expect(m.get('a')!.updatedAt.toISOString()).toBe('2026-11-01T10:00:00.000Z');
    await expect(storedVersions(t.db, 'kobo', 'probe', { probe: ["x') OR 1=1 --"] })).rejects.toThrow(/invalid probe path/);
  });

  it('a batch larger than the server accepts in one statement still loads (cut by bytes)', async () => {
    // 500 records of 40 kB: 20 MB, over MariaDB's default 16 MB max_allowed_packet.
    const big = Array.from({ length: 500 }, (_, i) => base({ formId: 'bytes', key: String(i), data: { i, notes: 'x'.repeat(40_000) } }));
    await upsertSubmissions(t.db, big);
    expect(await t.db.prisma.submission.count({ where: { formId: 'bytes' } })).toBe(500);
  });

  it('form ids and keys that differ only in case or accents are different', async () => {
    const ids = ['household', 'Household', 'enquête', 'enquete'];
    for (const formId of ids) await upsertSubmissions(t.db, [base({ formId, key: 'K', data: { formId } }), base({ formId, key: 'k', data: { formId } })]);
    for (const formId of ids) {
      const rows = await t.db.prisma.submission.findMany({ where: { sourceId: 'kobo', formId } });
      expect(rows.map((r) => [r.formId, r.key]).sort()).toEqual([[formId, 'K'], [formId, 'k']]);
    }
  });

  it('loads a large batch in chunks and reports stored versions', async () => {
    const batch = Array.from({ length: 2500 }, (_, i) => base({ formId: 'big', key: String(i), version: `v${i}`, data: { i } }));
    await upsertSubmissions(t.db, batch);
    const stored = await storedVersions(t.db, 'kobo', 'big');
    expect(stored.size).toBe(2500);
    expect(stored.get('2499')?.version).toBe('v2499');
  });
});
