/** The loader writes typed analyst tables in the raw upsert's transaction, and a poison record keeps neither. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Dialect } from '@fieldsync/db';
import { IngestBatch } from '@fieldsync/queues';
import { TypedTables, typedTablesFromConfig } from '@fieldsync/tables';
import { definition, household, koboRecord, submission } from '@fieldsync/tables/fixtures';
import { koboTestConfig, openHarness, until, type Harness } from './testing.ts';

function nested(depth: number): unknown {
  return depth === 0 ? 'x' : { d: nested(depth - 1) };
}

describe.each<Dialect>(['postgresql', 'mysql'])('loader typed tables on %s', (dialect) => {
  let h: Harness;
  const table = dialect === 'postgresql' ? '"fieldsync"."household_survey"' : '`household_survey`';
  beforeAll(async () => {
    h = await openHarness(dialect);
    const def = definition({ sourceId: 'kobo', formId: 'aHouse', shape: 'kobo' });
    await h.db.prisma.formSchema.create({ data: { sourceId: 'kobo', formId: 'aHouse', version: 'v1', definition: def as object, fetchedAt: new Date() } });
    h.startLoader({ tables: new TypedTables(dialect, { refreshMs: 0 }) });
  });
  afterAll(() => h?.close());

  it('loads typed rows with the batch, counts answers that do not fit, and stores nothing typed for a poison record', async () => {
    const good = [1, 2, 3, 4].map((i) => submission('kobo', 'aHouse', String(i), { ...koboRecord(household(i)), ...(i === 2 ? { 'hh/hh_size': 'n/a' } : {}) }));
    const poison = submission('kobo', 'aHouse', '5', { ...koboRecord(household(5)), bad: 'nul\u0000here', deep: nested(40) });
    const job = await h.queues.ingest.add(IngestBatch.name, { submissions: [...good, poison] }, { ...IngestBatch.options, attempts: 1 });

    await until(() => h.db.prisma.deadLetter.count(), (n) => n > 0);
    const rows = await h.db.sql.query<{ k: string; s: unknown }>(`SELECT _key AS k, hh__hh_size AS s FROM ${table} ORDER BY _key`);
    expect(rows.map((r) => r.k)).toEqual(['1', '2', '3', '4']);
    expect(rows.find((r) => r.k === '2')!.s).toBeNull();
    expect(rows.filter((r) => r.s !== null)).toHaveLength(3);
    expect(await h.db.prisma.submission.count({ where: { formId: 'aHouse' } })).toBe(4);

    // A clean batch reports its unfit count as the job's result.
    const next = await h.queues.ingest.add(IngestBatch.name, { submissions: [submission('kobo', 'aHouse', '6', { ...koboRecord(household(6)), 'hh/hh_size': 'many', 'hh/income': 'lots' })] }, IngestBatch.options);
    const done = await until(async () => (await h.queues.ingest.getJob(next.id!))?.returnvalue as { unfit?: number } | undefined, (r) => !!r);
    expect(done).toEqual({ loaded: 1, poison: 0, unfit: 2 });
    expect(await (await h.queues.ingest.getJob(job.id!))!.getState()).toBe('failed');
  });

  it('a re-delivery of stored versions leaves the typed rows alone; a new version rewrites its row', async () => {
    const recs = [11, 12].map((i) => submission('kobo', 'aHouse', String(i), { ...koboRecord(household(i)), ...(i === 12 ? { 'hh/hh_size': 'n/a' } : {}) }));
    const load = async (subs: typeof recs) => {
      const job = await h.queues.ingest.add(IngestBatch.name, { submissions: subs }, IngestBatch.options);
      return until(async () => (await h.queues.ingest.getJob(job.id!))?.returnvalue as { loaded: number; unfit?: number } | undefined, (r) => !!r);
    };
    expect(await load(recs)).toMatchObject({ loaded: 2, unfit: 1 });
    const sizeOf = async (k: string) => (await h.db.sql.query<{ s: unknown }>(`SELECT hh__hh_size AS s FROM ${table} WHERE _key = ?`, [k]))[0]?.s;
    const before = await sizeOf('11');
    // Re-delivered unchanged: the upsert says which rows it may have written (PostgreSQL
    // by RETURNING, MySQL by dropping copies of the stored row first), so the typed rows
    // are not rewritten and the unfit answer of record 12 is not counted again.
    expect(await load(recs)).toMatchObject({ loaded: 2, unfit: 0 });
    expect(await sizeOf('11')).toEqual(before);
    const edit = submission('kobo', 'aHouse', '11', { ...koboRecord(household(11)), 'meta/instanceID': 'uuid:edit-11', 'hh/hh_size': '9' }, { updatedAt: '2026-11-17T07:00:00.000Z' });
    expect(await load([edit])).toMatchObject({ loaded: 1, unfit: 0 });
    expect(Number(await sizeOf('11'))).toBe(9);
  });

  it('switches typed tables from the config: on by default, off per source', () => {
    const base = { url: 'http://127.0.0.1:9', token: 't', assetUids: ['aHouse'] };
    const on = typedTablesFromConfig(koboTestConfig(base), dialect);
    expect(on?.enabledFor('kobo')).toBe(true);
    expect(on?.target.schema).toBe('fieldsync');
    const off = typedTablesFromConfig(koboTestConfig(base, { tables: { enabled: false } }), dialect);
    expect(off?.enabledFor('kobo')).toBe(false);
  });
});
