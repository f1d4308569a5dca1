/*
 * The loader's JSON path (a PostgreSQL batch staged from its job's JSON text, never
 * parsed in JavaScript) must take no job that the job schema refuses: such a job has
 * to reach the parsed path, which dead-letters it and says what is wrong.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { upsertSubmissionsJson, type Database, type Sql } from '@fieldsync/db';
import { createTestDatabase, type TestDatabase } from '@fieldsync/db/testing';
import { IngestBatch } from '@fieldsync/queues';
import { openHarness, until } from './testing.ts';

type Json = Record<string, unknown>;
const record = (key: string, over: Json = {}): Json => ({
  sourceId: 'kobo', formId: 'aForm', key, version: `uuid:${key}`, updatedAt: '2026-11-01T10:00:00.000Z', submittedAt: '2026-11-01T10:00:00.000Z',
  observedAt: '2026-11-01T10:00:01.000Z', deleted: false, data: { _id: Number(key), q: 'answer' }, via: 'poll', ...over,
});
const job = (first: Json | unknown, over: Json = {}): Json => ({ submissions: [first, record('2'), record('3')], runId: '7', ...over });
const without = (r: Json, field: string): Json => Object.fromEntries(Object.entries(r).filter(([k]) => k !== field));

// Each refused by IngestBatch's schema.
const refused: [string, Json][] = [
  ['a numeric key', job(record('1', { key: 1 }))],
  ['an empty key', job(record('1', { key: '' }))],
  ['a key of 192 characters', job(record('1', { key: 'k'.repeat(192) }))],
  ['a source id of 65 characters', job(record('1', { sourceId: 's'.repeat(65) }))],
  ['a null form id', job(record('1', { formId: null }))],
  ['no version', job(without(record('1'), 'version'))],
  ['a numeric replaces', job(record('1', { replaces: 5 }))],
  ['an empty replaces', job(record('1', { replaces: '' }))],
  ['deleted as a string', job(record('1', { deleted: 'true' }))],
  ['deleted null', job(record('1', { deleted: null }))],
  ['a time without its zone', job(record('1', { updatedAt: '2026-11-01T10:00:00' }))],
  ['a time as a number', job(record('1', { submittedAt: 1_762_000_000_000 }))],
  ['no observedAt', job(without(record('1'), 'observedAt'))],
  ['a deletedAt that is no time', job(record('1', { deleted: true, deletedAt: 'yesterday' }))],
  ['data as an array', job(record('1', { data: [1, 2] }))],
  ['data as a string', job(record('1', { data: '{"q": 1}' }))],
  ['null data', job(record('1', { data: null }))],
  ['an unknown via', job(record('1', { via: 'email' }))],
  ['no via', job(without(record('1'), 'via'))],
  ['a record that is a string', job('record 1')],
  ['no records', { submissions: [], runId: '7' }],
  ['no submissions field', { runId: '7' }],
  ['submissions as an object', { submissions: { 0: record('1') } }],
  ['a runId that is no number', job(record('1'), { runId: 'abc' })],
  ['a numeric runId', job(record('1'), { runId: 7 })],
  ['a null runId', job(record('1'), { runId: null })],
];

// Accepted by the schema; the JSON path stores them exactly as given.
const taken: [string, Json][] = [
  ['the plain job', job(record('1'))],
  ['replaces and deletedAt null', job(record('1', { replaces: null, deletedAt: null }))],
  ['no deleted, replaces or deletedAt', job(without(without(record('1'), 'deleted'), 'replaces'))],
  ['a deletion without deletedAt', job(record('1', { deleted: true }))],
  ['a deletion with deletedAt and a replaces', job(record('1', { deleted: true, deletedAt: '2026-11-02T00:00:00.000Z', replaces: 'uuid:0' }))],
  ['fields the schema does not know', job(record('1', { extra: 1 }), { outageRetries: 2 })],
  ['no runId (a webhook batch)', without(job(record('1')), 'runId')],
];

// Accepted by the schema, but the JSON path leaves them to the parsed path.
const leftToParsed: [string, Json][] = [
  ['a time with an offset', job(record('1', { updatedAt: '2026-11-01T12:00:00.000+02:00' }))],
  ['a time without milliseconds', job(record('1', { observedAt: '2026-11-01T10:00:01Z' }))],
  ['a narrowed retry (storedKeys)', job(record('1'), { storedKeys: ['9'] })],
  ['a version said to replace itself', job(record('1', { replaces: 'uuid:1' }))],
  ['two copies of one key', { submissions: [record('1'), record('1', { version: 'uuid:1b', updatedAt: '2026-11-02T10:00:00.000Z' })] }],
];

describe('the JSON path of an ingest batch (PostgreSQL)', () => {
  let t: TestDatabase;
  beforeAll(async () => { t = await createTestDatabase('postgresql'); });
  afterAll(async () => { await t?.drop(); });

  // Older versions of the job's records: a job that changed anything would replace them.
  const older = { submissions: ['1', '2', '3'].map((k) => record(k, { version: `uuid:${k}-0`, updatedAt: '2026-10-01T10:00:00.000Z', data: { old: true } })) };
  /** The JSON path on `j`, over an empty table or over older versions of its records; the rows it left. */
  const tryJson = async (j: Json, over: 'empty' | 'stored' = 'empty') => {
    await t.db.sql.execute('TRUNCATE "Submission", "SupersededVersion"');
    if (over === 'stored') expect(await upsertSubmissionsJson(t.db.sql, JSON.stringify(older))).toHaveLength(1);
    const before = await t.db.prisma.submission.findMany({ orderBy: { key: 'asc' } });
    const outcome = await upsertSubmissionsJson(t.db.sql, JSON.stringify(j)).then((counts) => ({ counts }), (err: unknown) => ({ err }));
    const after = await t.db.prisma.submission.findMany({ orderBy: { key: 'asc' } });
    return { ...outcome, before, after, rows: after.length };
  };

  /** The JSON path declines `j` (throws or answers null) and leaves the table as it was, empty or not. */
  const declinedUnchanged = async (j: Json) => {
    for (const over of ['empty', 'stored'] as const) {
      const r = await tryJson(j, over);
      expect('err' in r || r.counts === null).toBe(true);
      expect(r.after).toEqual(r.before);
    }
  };

  it.each(refused)('refuses what the schema refuses, changing nothing: %s', async (_, j) => {
    expect(IngestBatch.payload.safeParse(j).success).toBe(false);
    await declinedUnchanged(j);
  });

  it.each(taken)('stores what the schema takes: %s', async (_, j) => {
    const parsed = IngestBatch.payload.parse(j);
    const r = await tryJson(j);
    expect(r).toMatchObject({ counts: [{ sourceId: 'kobo', formId: 'aForm', via: 'poll', n: 3 }], rows: 3 });
    const first = parsed.submissions[0]!;
    const row = await t.db.prisma.submission.findFirstOrThrow({ where: { key: '1' } });
    expect(row).toMatchObject({
      version: first.version, replaces: first.replaces ?? null, deleted: first.deleted, data: first.data, via: first.via,
      updatedAt: new Date(first.updatedAt), submittedAt: new Date(first.submittedAt), stateSeenAt: new Date(first.observedAt),
      deletedAt: first.deleted ? new Date(first.deletedAt ?? first.observedAt) : null,
    });
    expect(await t.db.prisma.supersededVersion.count()).toBe(first.replaces ? 1 : 0);
  });

  it.each(leftToParsed)('leaves to the parsed path, changing nothing: %s', async (_, j) => {
    expect(IngestBatch.payload.safeParse(j).success).toBe(true);
    await declinedUnchanged(j);
  });
});

describe('the loader on PostgreSQL without typed tables', () => {
  it('stores a batch by its JSON text, and one the JSON path refuses by its parsed records', async () => {
    const h = await openHarness('postgresql');
    try {
      // Every statement the loader sends, to see which path each batch took.
      const sent: string[] = [];
      const spy = (sql: Sql): Sql => ({
        query: (text, params) => (sent.push(text), sql.query(text, params)),
        execute: (text, params) => (sent.push(text), sql.execute(text, params)),
        ...(sql.copyIn ? { copyIn: (text: string, data: Iterable<string>) => (sent.push(text), sql.copyIn!(text, data)) } : {}),
      });
      const db: Database = { ...h.db, sql: spy(h.db.sql), transaction: (fn) => h.db.transaction((sql) => fn(spy(sql))) };
      h.startLoader({ db });
      const count = () => h.db.prisma.submission.count();

      await h.queues.ingest.add(IngestBatch.name, job(record('1')), IngestBatch.options);
      expect(await until(count, (n) => n === 3)).toBe(3);
      expect(sent.some((t) => t.includes('jsonb_array_elements'))).toBe(true);
      expect(sent.filter((t) => t.startsWith('COPY'))).toEqual([]);

      // Two new copies of one key: the merge cannot insert a row twice, so the parsed path picks the newest.
      const older = record('9', { version: 'uuid:9a' });
      const newer = record('9', { version: 'uuid:9b', updatedAt: '2026-11-02T10:00:00.000Z', data: { q: 'newer' } });
      await h.queues.ingest.add(IngestBatch.name, { submissions: [newer, older] }, IngestBatch.options);
      expect(await until(count, (n) => n === 4)).toBe(4);
      expect((await h.db.prisma.submission.findFirstOrThrow({ where: { key: '9' } })).data).toEqual({ q: 'newer' });
      expect(sent.filter((t) => t.startsWith('COPY'))).toHaveLength(1);
    } finally {
      await h.close();
    }
  });
});
