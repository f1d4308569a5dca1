/**
 * How fast the raw layer loads: N realistic submissions (about 1.5 KB of JSON
 * each) upserted in ingest-sized batches, each batch its own transaction, on
 * a throwaway database. Prints rows/s for a first load, a re-delivery of the
 * same versions (no-ops) and a load of newer versions (updates).
 *
 *   pnpm --filter @fieldsync/db bench [-- --rows 50000 --batch 500 --db postgresql|mysql]
 */
import { parseArgs } from 'node:util';
import type { CanonicalSubmission } from '@fieldsync/model';
import { createTestDatabase } from '../src/testing.ts';
import { upsertSubmissions } from '../src/submissions.ts';
import type { Dialect } from '../src/dialect.ts';

const { values } = parseArgs({ options: { rows: { type: 'string', default: '50000' }, batch: { type: 'string', default: '500' }, db: { type: 'string', multiple: true } } });
const N = Number(values.rows);
const BATCH = Number(values.batch);
const dialects = (values.db ?? ['postgresql', 'mysql']) as Dialect[];

function record(i: number, edit: number): CanonicalSubmission {
  const t = new Date(Date.UTC(2026, 0, 1) + i * 1000 + edit * 86_400_000).toISOString();
  const data: Record<string, unknown> = {
    _id: i, _uuid: `u-${i}-${edit}`, 'meta/instanceID': `uuid:${i}-${edit}`, _xform_id_string: 'aBench', _submission_time: t.slice(0, 19),
    'group_hh/name': `Respondent ${i}`, 'group_hh/age': String(20 + (i % 60)), 'group_hh/sex': i % 2 ? 'male' : 'female',
    water_sources: 'borehole river rain', location: `${(i % 90) - 45}.123 ${(i % 180) - 90}.456 1200 5`,
    household: Array.from({ length: 3 }, (_, k) => ({ 'household/member_name': `Member ${k}`, 'household/member_age': String(k * 10) })),
    notes: 'x'.repeat(600), _attachments: [], _status: 'submitted_via_web', _geolocation: [1.5, 2.5], _validation_status: {},
  };
  return {
    sourceId: 'bench', formId: 'aBench', key: String(i), version: `uuid:${i}-${edit}`,
    // Kobo edits name the version they replace (the upsert also records it as superseded).
    replaces: edit > 0 ? `uuid:${i}-${edit - 1}` : undefined, updatedAt: t, submittedAt: t,
    deleted: false, observedAt: t, data, via: 'poll',
  };
}

async function timed(label: string, fn: () => Promise<void>): Promise<void> {
  const start = process.hrtime.bigint();
  await fn();
  const s = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(`  ${label.padEnd(34)} ${s.toFixed(2).padStart(7)} s  ${Math.round(N / s).toLocaleString('en').padStart(8)} rows/s`);
}

for (const dialect of dialects) {
  const t = await createTestDatabase(dialect);
  const db = t.db;
  console.log(`${dialect}: ${N.toLocaleString('en')} submissions, batches of ${BATCH}, one transaction per batch`);
  const load = (edit: number) => async () => {
    for (let i = 0; i < N; i += BATCH) {
      const batch = Array.from({ length: Math.min(BATCH, N - i) }, (_, k) => record(i + k, edit));
      await db.transaction((sql) => upsertSubmissions(db, batch, sql));
    }
  };
  try {
    await timed('first load (inserts)', load(0));
    await timed('re-delivery (no-ops)', load(0));
    await timed('newer versions (updates)', load(1));
    const n = await db.prisma.submission.count();
    if (n !== N) throw new Error(`expected ${N} rows, found ${n}`);
  } finally {
    await t.drop();
  }
}
