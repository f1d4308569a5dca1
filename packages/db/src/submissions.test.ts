import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordId, type CanonicalSubmission } from '@fieldsync/model';
import { makeSubmission } from '@fieldsync/model/testing';
import { createTestDatabase, type TestDatabase } from './testing.ts';
import { DuplicateKeysError, upsertSubmissions, upsertSubmissionsJson } from './submissions.ts';
import type { Sql } from './database.ts';
import { migrate } from './migrate.ts';
import type { Dialect } from './dialect.ts';

const base = (over: Partial<CanonicalSubmission> = {}): CanonicalSubmission =>
  makeSubmission({ formId: 'aForm', updatedAt: '2026-11-01T10:00:00.000Z', submittedAt: '2026-11-01T10:00:00.000Z', observedAt: '2026-11-01T10:00:01.000Z', data: { _id: 1, q: 'first' }, via: 'webhook', ...over });

/*
 * Every case runs on both databases and, on PostgreSQL, also through the loader's
 * JSON path (the job's JSON text staged by the database), which must store the same.
 */
describe.each<[Dialect, 'parsed' | 'json']>([['postgresql', 'parsed'], ['mysql', 'parsed'], ['postgresql', 'json']])('bulk upsert on %s, %s records', (dialect, path) => {
  let t: TestDatabase;
  beforeAll(async () => { t = await createTestDatabase(dialect); });
  afterAll(async () => { await t?.drop(); });

  /** Upserts as the loader would: in the caller's transaction `sql` if given, else in one of its own. */
  async function upsert(batch: CanonicalSubmission[], sql?: Sql): Promise<void> {
    const parsed = () => (sql ? upsertSubmissions(t.db, batch, sql) : upsertSubmissions(t.db, batch));
    if (path === 'parsed') return void (await parsed());
    const json = JSON.stringify({ submissions: batch });
    if (new Set(batch.map(recordId)).size < batch.length) {
      // Two copies of one key: the JSON path changes nothing and says so; the loader then takes the parsed path.
      const rows = () => t.db.prisma.submission.findMany({ where: { OR: batch.map((b) => ({ sourceId: b.sourceId, formId: b.formId, key: b.key })) }, orderBy: { id: 'asc' } });
      const before = await rows();
      await expect(upsertSubmissionsJson(t.db.sql, json)).rejects.toThrow(DuplicateKeysError);
      expect(await rows()).toEqual(before);
      return void (await parsed());
    }
    // The JSON path is one statement; in the caller's transaction when there is one.
    const counts = await upsertSubmissionsJson(sql ?? t.db.sql, json);
    expect(counts?.reduce((a, c) => a + c.n, 0)).toBe(batch.length);
  }

  const row = async (key: string, formId = 'aForm') =>
    t.db.prisma.submission.findUniqueOrThrow({ where: { sourceId_formId_key: { sourceId: 'kobo', formId, key } } });

  it('migrations are idempotent', async () => {
    const again = await migrate(t.url);
    expect(again.applied).toEqual([]);
    expect(again.alreadyApplied.length).toBeGreaterThan(0);
  });

  it('re-delivering a version leaves one unchanged row', async () => {
    const s = base({ formId: 'dup' });
    await upsert([s]);
    const first = await row('1', 'dup');
    await upsert([s, s]);
    await upsert([{ ...s, observedAt: '2026-11-02T00:00:00.000Z' }]);
    expect(await t.db.prisma.submission.count({ where: { formId: 'dup' } })).toBe(1);
    expect(await row('1', 'dup')).toEqual(first);
  });

  if (path === 'parsed') {
    it('a copy of exactly the stored row is left out of `written`; one with other data or another deletion state is written', async () => {
      const same = base({ formId: 'written', key: 'same' });
      const review = base({ formId: 'written', key: 'review', data: { s: 'received' } });
      const gone = base({ formId: 'written', key: 'gone' });
      await upsertSubmissions(t.db, [same, review, gone]);
      const before = await row('same', 'written');
      const again = [
        { ...same, observedAt: '2026-11-02T00:00:00.000Z' },
        { ...review, updatedAt: '2026-11-04T00:00:00.000Z', data: { s: 'approved' } },
        { ...gone, deleted: true, observedAt: '2026-11-02T00:00:00.000Z', via: 'sweep' as const },
      ];
      const up = await upsertSubmissions(t.db, again);
      expect([...up.written].sort()).toEqual([recordId(again[2]!), recordId(again[1]!)].sort());
      expect(await row('same', 'written')).toEqual(before);
      expect((await row('review', 'written')).data).toEqual({ s: 'approved' });
      expect((await row('gone', 'written')).deleted).toBe(true);
    });
  }

  it('newest wins in any arrival order', async () => {
    const v1 = base({ formId: 'order' });
    const v2 = base({ formId: 'order', version: 'uuid:v2', updatedAt: '2026-11-03T00:00:00.000Z', data: { _id: 1, q: 'edited' } });
    await upsert([v2]);
    await upsert([v1]);
    expect((await row('1', 'order')).data).toEqual({ _id: 1, q: 'edited' });
    // both in one batch, old one last
    await upsert([base({ formId: 'order', key: '2', version: 'b', updatedAt: '2026-11-05T00:00:00.000Z', data: { n: 2 } }), base({ formId: 'order', key: '2', version: 'a', data: { n: 1 } })]);
    expect((await row('2', 'order')).data).toEqual({ n: 2 });
  });

  it('same version with changed data and later updatedAt (a review) is applied', async () => {
    await upsert([base({ formId: 'review', data: { s: 'received' } })]);
    await upsert([base({ formId: 'review', updatedAt: '2026-11-04T00:00:00.000Z', data: { s: 'approved' } })]);
    const r = await row('1', 'review');
    expect(r.data).toEqual({ s: 'approved' });
    expect(r.updatedAt.toISOString()).toBe('2026-11-04T00:00:00.000Z');
  });

  it('tombstones mark deleted without losing data; a later observation restores, an earlier one does not', async () => {
    const s = base({ formId: 'del' });
    await upsert([s]);
    await upsert([{ ...s, deleted: true, data: {}, observedAt: '2026-11-10T00:00:00.000Z', via: 'sweep' }]);
    let r = await row('1', 'del');
    expect(r.deleted).toBe(true);
    expect(r.data).toEqual(s.data);
    await upsert([{ ...s, observedAt: '2026-11-09T00:00:00.000Z' }]); // stale job
    expect((await row('1', 'del')).deleted).toBe(true);
    await upsert([{ ...s, observedAt: '2026-11-11T00:00:00.000Z', via: 'sweep' }]); // restored
    r = await row('1', 'del');
    expect(r.deleted).toBe(false);
    expect(r.deletedAt).toBeNull();
  });

  it('the API copy of a version replaces a webhook copy of it (a field subset), never the other way round', async () => {
    const subset = base({ formId: 'subset', via: 'webhook', data: { _id: 1, q: 'first' } });
    const full = base({ formId: 'subset', via: 'poll', observedAt: '2026-11-01T11:00:00.000Z', data: { _id: 1, q: 'first', other: 'answer', _attachments: [{ filename: 'a.jpg' }] } });
    await upsert([subset]);
    await upsert([full]);
    let r = await row('1', 'subset');
    expect(r.data).toEqual(full.data);
    expect(r.via).toBe('poll');
    const afterPoll = r;
    await upsert([{ ...subset, observedAt: '2026-11-01T12:00:00.000Z' }]); // a late webhook retry
    await upsert([{ ...full, via: 'sweep', deleted: true, data: {}, observedAt: '2026-11-01T09:00:00.000Z' }]); // a stale tombstone
    r = await row('1', 'subset');
    expect(r).toEqual(afterPoll);
  });

  describe('Kobo lineage (meta/deprecatedID)', () => {
    // As the Kobo mapping builds them: an original is as old as its submission; an
    // edit's updatedAt is when it was seen (Kobo keeps no edit time), here its arrival.
    const SUB = Date.UTC(2026, 10, 1);
    const kobo = (formId: string, key: number, edit: number, via: CanonicalSubmission['via'], seenAt: number): CanonicalSubmission => {
      const observedAt = new Date(seenAt).toISOString();
      return base({
        formId, key: String(key), version: `uuid:${key}-${edit}`, replaces: edit > 0 ? `uuid:${key}-${edit - 1}` : undefined,
        submittedAt: new Date(SUB).toISOString(), updatedAt: edit > 0 ? observedAt : new Date(SUB).toISOString(), observedAt,
        data: { _id: key, 'meta/instanceID': `uuid:${key}-${edit}`, answer: `edit ${edit}` }, via,
      });
    };
    const random = (seed: number) => () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const shuffle = <T,>(xs: T[], rnd: () => number) => { for (let i = xs.length - 1; i > 0; i--) { const j = Math.floor(rnd() * (i + 1)); [xs[i], xs[j]] = [xs[j]!, xs[i]!]; } return xs; };
    const answers = async (formId: string) =>
      (await t.db.prisma.submission.findMany({ where: { formId } })).map((r) => (r.data as { answer: string }).answer);

    it.each(['shuffled', 'reversed'])('250 records x (original, edit 1, edit 2) by webhook, %s: edit 2 wins everywhere', async (order) => {
      const formId = `chain-${order}`;
      const versions = Array.from({ length: 250 }, (_, k) => [0, 1, 2].map((e) => ({ k, e }))).flat();
      const rnd = random(order === 'shuffled' ? 13 : 7);
      const arrivals = order === 'shuffled' ? shuffle(versions, rnd) : versions.reverse();
      // Arrival time is the only time a webhook copy has: it must not decide.
      const copies = arrivals.map(({ k, e }, i) => kobo(formId, k, e, 'webhook', SUB + 60_000 + i * 1000));
      for (let i = 0; i < copies.length; ) {
        const n = 1 + Math.floor(rnd() * 4); // batches of 1-4, so lineage within a batch counts too
        await t.db.transaction((sql) => upsert(copies.slice(i, i + n), sql));
        i += n;
      }
      const got = await answers(formId);
      expect(got).toHaveLength(250);
      expect(got.filter((a) => a !== 'edit 2')).toEqual([]);
      const rows = await t.db.prisma.submission.findMany({ where: { formId, key: '0' } });
      expect(rows[0]).toMatchObject({ version: 'uuid:0-2', replaces: 'uuid:0-1' });
    });

    it("the API's copy stands until a webhook copy is known to supersede it", async () => {
      const f = 'api-authority';
      await upsert([kobo(f, 1, 1, 'poll', SUB + 10_000)]);
      // edit 3 by webhook (a retry re-read later): it replaces edit 2, which we have never seen.
      await upsert([kobo(f, 1, 3, 'webhook', SUB + 20_000)]);
      expect(await answers(f)).toEqual(['edit 1']);
      // edit 2 replaces edit 1: the stored copy is now known superseded.
      await upsert([kobo(f, 1, 2, 'webhook', SUB + 30_000)]);
      expect(await answers(f)).toEqual(['edit 2']);
      await upsert([kobo(f, 1, 3, 'webhook', SUB + 5_000)]); // its retry, "seen" with an earlier clock
      expect(await answers(f)).toEqual(['edit 3']);
      // A stale page of edit 1 and a late webhook of the original: both known superseded.
      await upsert([kobo(f, 1, 1, 'poll', SUB + 90_000)]);
      await upsert([kobo(f, 1, 0, 'sweep', SUB + 95_000)]);
      expect(await answers(f)).toEqual(['edit 3']);
      expect(await t.db.prisma.supersededVersion.count({ where: { formId: f } })).toBe(3);
    });

    it('a version known superseded by an earlier batch never comes back, in any later order', async () => {
      const f = 'gap';
      await upsert([kobo(f, 1, 2, 'webhook', SUB + 1000)]); // marks edit 1 superseded
      await upsert([kobo(f, 1, 1, 'poll', SUB + 9000)]); // a later-stamped copy of edit 1
      await upsert([kobo(f, 1, 0, 'poll', SUB + 9000)]);
      expect(await answers(f)).toEqual(['edit 2']);
    });

    it('the API copy of an edited version replaces its webhook copy whatever the stamps, never the reverse', async () => {
      const f = 'same-edit';
      const hook = { ...kobo(f, 1, 1, 'webhook', SUB + 50_000), data: { answer: 'subset' } };
      const api = kobo(f, 1, 1, 'poll', SUB + 20_000);
      await upsert([hook]);
      await upsert([api]);
      expect(await answers(f)).toEqual(['edit 1']);
      await upsert([{ ...hook, observedAt: new Date(SUB + 99_000).toISOString(), updatedAt: new Date(SUB + 99_000).toISOString() }]);
      expect(await answers(f)).toEqual(['edit 1']);
    });
  });

  it('a batch larger than the server accepts in one statement still loads (cut by bytes)', async () => {
    // 500 records of 40 kB: 20 MB, over MariaDB's default 16 MB max_allowed_packet.
    const big = Array.from({ length: 500 }, (_, i) => base({ formId: 'bytes', key: String(i), data: { i, notes: 'x'.repeat(40_000) } }));
    await upsert(big);
    expect(await t.db.prisma.submission.count({ where: { formId: 'bytes' } })).toBe(500);
  });

  it('answers in any script, with escapes, and records larger than a write chunk come back exactly', async () => {
    // Multi-byte UTF-8 (é, Arabic, CJK), astral characters (4 bytes, two UTF-16 units), COPY's
    // escapes (backslash, tab, newline), and one record of 600 kB: over a 256 kB chunk.
    const texts = ['enquête', 'استبيان', '调查问卷', '🌍👩🏽‍🌾', 'tab\there\nnew line, back\\slash', 'ß'.repeat(300_000)];
    // 300 more of 3 kB of CJK each (3 bytes a character): chunks fill with multi-byte lines.
    const many = Array.from({ length: 300 }, (_, i) => `${i}:${'调查'.repeat(500)}`);
    const batch = [...texts, ...many].map((q, i) => base({ formId: 'scripts', key: String(i).padStart(3, '0'), data: { _id: i, q, mixed: `${q.slice(0, 20)}|${texts[i % texts.length]!.slice(0, 50)}` } }));
    await upsert(batch);
    const rows = await t.db.prisma.submission.findMany({ where: { formId: 'scripts' }, orderBy: { key: 'asc' } });
    expect(rows.map((r) => r.data)).toEqual(batch.map((b) => b.data));
  });

  it('form ids and keys that differ only in case or accents are different', async () => {
    const ids = ['household', 'Household', 'enquête', 'enquete'];
    for (const formId of ids) await upsert([base({ formId, key: 'K', data: { formId } }), base({ formId, key: 'k', data: { formId } })]);
    for (const formId of ids) {
      const rows = await t.db.prisma.submission.findMany({ where: { sourceId: 'kobo', formId } });
      expect(rows.map((r) => [r.formId, r.key]).sort()).toEqual([[formId, 'K'], [formId, 'k']]);
    }
  });

  it('loads a large batch in chunks', async () => {
    const batch = Array.from({ length: 2500 }, (_, i) => base({ formId: 'big', key: String(i), version: `v${i}`, data: { i } }));
    await upsert(batch);
    expect(await t.db.prisma.submission.count({ where: { formId: 'big' } })).toBe(2500);
    expect((await t.db.prisma.submission.findFirst({ where: { formId: 'big', key: '2499' } }))?.version).toBe('v2499');
  });
});
