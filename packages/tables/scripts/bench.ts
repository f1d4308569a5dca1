/**
 * What typed tables cost a backfill: N Kobo household records (30 % with
 * repeats, nested repeats inside) loaded in ingest-sized batches exactly as
 * the loader does it (plan before, raw upsert + typed rows in one
 * transaction), with typed tables off and on, each on a throwaway database;
 * then `tables rebuild` of the same rows. On PostgreSQL also "on, read back":
 * typed tables on, but every row read back from Submission (what MySQL does, and
 * what PostgreSQL did before typing the rows its upsert inserted from memory).
 *
 *   pnpm --filter @fieldsync/tables bench [-- --rows 50000 --batch 500 --db postgresql --db mysql]
 */
import { parseArgs } from 'node:util';
import { upsertSubmissions, type Database, type Dialect } from '@fieldsync/db';
import { createTestDatabase } from '@fieldsync/db/testing';
import type { CanonicalSubmission } from '@fieldsync/model';
import { TypedTables } from '../src/service.ts';
import { definition, household, koboRecord, rng, submission } from '../src/fixtures/forms.ts';

const { values } = parseArgs({ args: process.argv.slice(2).filter((a) => a !== '--'), options: { rows: { type: 'string', default: '50000' }, batch: { type: 'string', default: '500' }, db: { type: 'string', multiple: true } } });
const N = Number(values.rows);
const BATCH = Number(values.batch);
const dialects = (values.db ?? ['postgresql', 'mysql']) as Dialect[];

function records(): CanonicalSubmission[] {
  const r = rng(7);
  return Array.from({ length: N }, (_, i) => {
    const h = household(i + 1, r, r() < 0.3);
    const t = new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString();
    return submission('bench', 'aHouse', String(i + 1), koboRecord(h), { updatedAt: t, submittedAt: t, observedAt: t, via: 'backfill' });
  });
}

async function load(db: Database, all: CanonicalSubmission[], tables: TypedTables | null, readBack = false): Promise<number> {
  const start = process.hrtime.bigint();
  for (let i = 0; i < all.length; i += BATCH) {
    const batch = all.slice(i, i + BATCH);
    const typed = tables ? await tables.prepare(db, batch) : null;
    await db.transaction(async (sql) => {
      const up = await upsertSubmissions(db, batch, sql);
      await typed?.apply(sql, readBack ? null : up.inserted);
    });
  }
  return Number(process.hrtime.bigint() - start) / 1e9;
}

const all = records();
const withRepeats = all.filter((s) => Array.isArray(s.data['hh/members'])).length;
console.log(`${N} records (${Math.round((withRepeats / N) * 100)} % with repeats), batches of ${BATCH}`);
for (const dialect of dialects) {
  console.log(`\n${dialect}`);
  const off = await createTestDatabase(dialect);
  const on = await createTestDatabase(dialect);
  const back = await createTestDatabase(dialect);
  try {
    const sOff = await load(off.db, all, null);
    console.log(`  typed tables off   ${sOff.toFixed(2).padStart(7)} s  ${Math.round(N / sOff).toLocaleString('en').padStart(8)} rows/s`);
    const def = definition({ sourceId: 'bench', formId: 'aHouse', shape: 'kobo' });
    await on.db.prisma.formSchema.create({ data: { sourceId: 'bench', formId: 'aHouse', version: 'v1', definition: def as object, fetchedAt: new Date() } });
    await back.db.prisma.formSchema.create({ data: { sourceId: 'bench', formId: 'aHouse', version: 'v1', definition: def as object, fetchedAt: new Date() } });
    // PostgreSQL types the rows its upsert inserted from memory (RETURNING); MySQL always reads back.
    if (dialect === 'postgresql') {
      const sBack = await load(back.db, all, new TypedTables(dialect), true);
      console.log(`  on, read back      ${sBack.toFixed(2).padStart(7)} s  ${Math.round(N / sBack).toLocaleString('en').padStart(8)} rows/s   ratio on/off ${(sOff / sBack).toFixed(2)}   (every row's JSON read back, as MySQL does)`);
    }
    const tables = new TypedTables(dialect);
    const sOn = await load(on.db, all, tables);
    console.log(`  typed tables on    ${sOn.toFixed(2).padStart(7)} s  ${Math.round(N / sOn).toLocaleString('en').padStart(8)} rows/s   ratio on/off ${(sOff / sOn).toFixed(2)}`);
    const [r] = await tables.rebuild(on.db, 'bench', 'aHouse');
    console.log(`  tables rebuild     ${(r!.ms / 1000).toFixed(2).padStart(7)} s  ${r!.records} records, ${r!.childRows} repeat rows`);
  } finally {
    await off.drop();
    await on.drop();
    await back.drop();
  }
}
