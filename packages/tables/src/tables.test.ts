/** Typed analyst tables on real PostgreSQL and MariaDB: layout, values, edits, evolution, names, rebuild. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { upsertSubmissions, type Database, type Dialect } from '@fieldsync/db';
import { createTestDatabase, type TestDatabase } from '@fieldsync/db/testing';
import type { CanonicalSubmission, FormDefinition } from '@fieldsync/model';
import { TypedTables } from './service.ts';
import { definition, field, household, householdFields, koboRecord, odkRecord, rng, submission } from './fixtures/forms.ts';

async function storeDefinition(db: Database, def: FormDefinition, fetchedAt = new Date()): Promise<void> {
  await db.prisma.formSchema.upsert({
    where: { sourceId_formId_version: { sourceId: def.sourceId, formId: def.formId, version: def.version } },
    create: { sourceId: def.sourceId, formId: def.formId, version: def.version, definition: def as object, fetchedAt },
    update: { definition: def as object, fetchedAt },
  });
}

/** The loader's transaction: raw upsert, then typed rows from what it stored. */
async function load(db: Database, tables: TypedTables, batch: CanonicalSubmission[]): Promise<number> {
  const prepared = await tables.prepare(db, batch);
  return db.transaction(async (sql) => {
    const up = await upsertSubmissions(db, batch, sql);
    // As the loader does: rows the upsert inserted (PostgreSQL) are typed from memory, the rest read back.
    return (await prepared?.apply(sql, up.inserted))?.unfit ?? 0;
  });
}

function rel(dialect: Dialect, name: string): string {
  return dialect === 'postgresql' ? `"fieldsync"."${name}"` : `\`${name}\``;
}

async function columnsOf(db: Database, table: string): Promise<Record<string, string>> {
  const rows = db.dialect === 'postgresql'
    ? await db.sql.query<{ c: string; t: string }>(`SELECT column_name AS c, data_type AS t FROM information_schema.columns WHERE table_schema = 'fieldsync' AND table_name = ?`, [table])
    : await db.sql.query<{ c: string; t: string }>(`SELECT column_name AS c, column_type AS t FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ?`, [table]);
  return Object.fromEntries(rows.map((r) => [r.c, r.t.toLowerCase()]));
}

async function tableNames(db: Database): Promise<string[]> {
  const rows = db.dialect === 'postgresql'
    ? await db.sql.query<{ n: string }>(`SELECT table_name AS n FROM information_schema.tables WHERE table_schema = 'fieldsync'`)
    : await db.sql.query<{ n: string }>(`SELECT table_name AS n FROM information_schema.tables WHERE table_schema = DATABASE()`);
  return rows.map((r) => r.n).sort();
}

/** Every row of a table as comparable JSON (numbers and dates as text). */
async function dump(db: Database, table: string): Promise<string[]> {
  const rows = await db.sql.query(`SELECT * FROM ${rel(db.dialect, table)} ORDER BY ${db.dialect === 'postgresql' ? '"_key"' : '`_key`'}`);
  return rows.map((r) => JSON.stringify(Object.entries(r).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : v === null ? null : String(v)])));
}

const TYPES: Record<Dialect, Record<string, string>> = {
  postgresql: { text: 'text', bigint: 'bigint', numeric: 'numeric', date: 'date', ts: 'timestamp with time zone', bool: 'boolean', int: 'integer' },
  mysql: { text: 'mediumtext', bigint: 'bigint(20)', numeric: 'decimal(38,12)', date: 'date', ts: 'datetime(3)', bool: 'tinyint(1)', int: 'int(11)' },
};

describe.each(['postgresql', 'mysql'] as const)('typed tables on %s', (dialect) => {
  let t: TestDatabase;
  let db: Database;
  let tables: TypedTables;
  const T = TYPES[dialect];

  beforeAll(async () => {
    t = await createTestDatabase(dialect);
    db = t.db;
    tables = new TypedTables(dialect, { refreshMs: 0, sources: { kobo: { choiceColumns: true } } });
    await storeDefinition(db, definition({ sourceId: 'kobo', formId: 'aHouse', shape: 'kobo', languages: ['English', 'French'] }));
    await storeDefinition(db, definition({ sourceId: 'odk', formId: 'household', shape: 'odk', languages: ['English', 'French'] }));
  });
  afterAll(async () => {
    await t?.drop();
  });

  it('builds a table per form and per repeat with typed columns, and the parent-child JOIN counts right (Kobo and ODK)', async () => {
    const hs = Array.from({ length: 20 }, (_, i) => household(i + 1));
    await load(db, tables, hs.map((h) => submission('kobo', 'aHouse', String(h.id), koboRecord(h, { validation: 'validation_status_approved' }))));
    await load(db, tables, hs.map((h) => submission('odk', 'household', `uuid:o-${h.id}`, odkRecord(h, { review: 'approved' }))));

    const names = await tableNames(db);
    // Same title on two sources: the second one is prefixed with its source id.
    for (const n of ['household_survey', 'household_survey__members', 'household_survey__members__visits', 'odk_household_survey', 'odk_household_survey__members', 'odk_household_survey__members__visits', '_fieldsync_columns', '_fieldsync_tables', '_fieldsync_choices']) {
      expect(names).toContain(n);
    }
    const parent = await columnsOf(db, 'household_survey');
    expect(parent).toMatchObject({
      _key: dialect === 'postgresql' ? 'text' : 'varchar(191)', _version: T.text === 'text' ? 'text' : 'text', _submitted_at: T.ts, _updated_at: T.ts, _deleted: T.bool, _form_version: 'text', _review_state: 'text',
      start: T.ts, end: T.ts, hh__village: T.text, hh__hh_size: T.bigint, hh__income: T.numeric, hh__visit_date: T.date, hh__water: T.text, hh__assets: T.text,
      hh__assets_radio: T.bool, hh__assets_bicycle: T.bool, hh__assets_phone: T.bool,
      hh__location_latitude: T.numeric, hh__location_longitude: T.numeric, hh__location_altitude: T.numeric, hh__location_accuracy: T.numeric,
      hh__photo: T.text, hh__photo_url: T.text,
    });
    expect(Object.keys(parent)).not.toContain('intro'); // a note stores nothing
    expect(await columnsOf(db, 'household_survey__members')).toMatchObject({ _key: expect.any(String), _parent: expect.any(String), _root: expect.any(String), _index: T.int, name: T.text, age: T.bigint });
    expect(await columnsOf(db, 'household_survey__members__visits')).toMatchObject({ when: T.date, temp: T.numeric });
    const odkParent = await columnsOf(db, 'odk_household_survey');
    expect(odkParent).toMatchObject({ hh__hh_size: T.bigint, hh__location_latitude: T.numeric, hh__photo: T.text });
    expect(Object.keys(odkParent)).not.toContain('hh__photo_url'); // ODK records carry no attachment URL

    const members = hs.reduce((n, h) => n + h.members.length, 0);
    const visits = hs.reduce((n, h) => n + h.members.reduce((m, x) => m + x.visits.length, 0), 0);
    expect(members).toBeGreaterThan(3);
    for (const p of ['household_survey', 'odk_household_survey']) {
      const [j] = await db.sql.query<{ n: number | string; h: number | string }>(
        `SELECT count(m._key) AS n, count(DISTINCT h._key) AS h FROM ${rel(dialect, p)} h JOIN ${rel(dialect, `${p}__members`)} m ON m._parent = h._key`,
      );
      expect(Number(j!.n)).toBe(members);
      expect(Number(j!.h)).toBe(hs.filter((h) => h.members.length).length);
      const [v] = await db.sql.query<{ n: number | string }>(
        `SELECT count(*) AS n FROM ${rel(dialect, p)} h JOIN ${rel(dialect, `${p}__members`)} m ON m._parent = h._key JOIN ${rel(dialect, `${p}__members__visits`)} v ON v._parent = m._key`,
      );
      expect(Number(v!.n)).toBe(visits);
    }
    const [photo] = await db.sql.query<{ u: string | null }>(`SELECT hh__photo_url AS u FROM ${rel(dialect, 'household_survey')} WHERE hh__photo IS NOT NULL LIMIT 1`);
    expect(photo?.u).toMatch(/^https:\/\/kf\.example\.org\/api\/v2\/assets\/aHouse\/data\/\d+\/attachments\//);

    // select_multiple: the answer as text, plus one boolean per choice (configured for this source).
    const picks = await db.sql.query<{ a: string | null; r: unknown; b: unknown; p: unknown }>(`SELECT hh__assets AS a, hh__assets_radio AS r, hh__assets_bicycle AS b, hh__assets_phone AS p FROM ${rel(dialect, 'household_survey')}`);
    const yes = (v: unknown) => (v === null ? null : v === true || Number(v) === 1);
    for (const x of picks) {
      const chosen = new Set((x.a ?? '').split(' ').filter(Boolean));
      expect([yes(x.r), yes(x.b), yes(x.p)]).toEqual(x.a === null ? [null, null, null] : [chosen.has('radio'), chosen.has('bicycle'), chosen.has('phone')]);
    }

    // Labels are column comments too.
    const [comment] = dialect === 'postgresql'
      ? await db.sql.query<{ c: string }>(`SELECT col_description('fieldsync.household_survey'::regclass, a.attnum) AS c FROM pg_attribute a WHERE a.attrelid = 'fieldsync.household_survey'::regclass AND a.attname = 'hh__hh_size'`)
      : await db.sql.query<{ c: string }>(`SELECT column_comment AS c FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'household_survey' AND column_name = 'hh__hh_size'`);
    expect(comment?.c).toBe('Household size');

    // The data dictionary and the choice labels are queryable.
    const dict = await db.sql.query<{ path: string; table_name: string; column_name: string; column_type: string; label: string }>(
      `SELECT path, table_name, column_name, column_type, label FROM ${rel(dialect, '_fieldsync_columns')} WHERE source_id = ? ORDER BY path, column_name`, ['kobo'],
    );
    expect(dict).toContainEqual(expect.objectContaining({ path: 'hh/members/age', table_name: 'household_survey__members', column_name: 'age', label: 'Age' }));
    expect(dict).toContainEqual(expect.objectContaining({ path: 'hh/location', column_name: 'hh__location_latitude', label: 'Location' }));
    const [choice] = await db.sql.query<{ label: string }>(`SELECT label FROM ${rel(dialect, '_fieldsync_choices')} WHERE source_id = ? AND list_name = ? AND choice_name = ? AND language = ?`, ['kobo', 'water', 'piped', 'French']);
    expect(choice?.label).toBe('Eau courante');
  });

  it('lands Kobo strings and ODK typed values as equal typed values', async () => {
    const skip = new Set(['_key', '_version', '_review_state', 'hh__photo_url', 'hh__assets_radio', 'hh__assets_bicycle', 'hh__assets_phone', '_submitted_at', '_updated_at']);
    const norm = (rows: string[]) => rows.map((r) => JSON.stringify((JSON.parse(r) as [string, unknown][]).filter(([k]) => !skip.has(k))));
    const k = norm(await dump(db, 'household_survey'));
    const o = norm(await dump(db, 'odk_household_survey'));
    expect(k.length).toBe(20);
    expect(new Set(k)).toEqual(new Set(o));
    const [row] = await db.sql.query<{ lat: string; size: string | number; inc: string }>(
      `SELECT hh__location_latitude AS lat, hh__hh_size AS size, hh__income AS inc FROM ${rel(dialect, 'odk_household_survey')} WHERE _key = ?`, ['uuid:o-1'],
    );
    const h = household(1);
    expect(Number(row!.lat)).toBe(h.location[0]);
    expect(Number(row!.size)).toBe(Number(h.size));
    expect(Number(row!.inc)).toBe(Number(h.income));
    const [review] = await db.sql.query<{ k: string; o: string }>(
      `SELECT (SELECT _review_state FROM ${rel(dialect, 'household_survey')} WHERE _key = '1') AS k, (SELECT _review_state FROM ${rel(dialect, 'odk_household_survey')} WHERE _key = 'uuid:o-1') AS o`,
    );
    expect(review).toEqual({ k: 'validation_status_approved', o: 'approved' });
  });

  it('an edit removing a repeat entry leaves one fewer child row; delete and restore flip _deleted', async () => {
    const h = { ...household(500, rng(500), true) };
    h.members = [{ name: 'A', age: 30, visits: [] }, { name: 'B', age: 20, visits: [{ when: '2026-10-01', temp: 37 }] }, { name: 'C', age: 10, visits: [] }];
    const key = '500';
    const count = async () => Number((await db.sql.query<{ n: number }>(`SELECT count(*) AS n FROM ${rel(dialect, 'household_survey__members')} WHERE _root = ?`, [key]))[0]!.n);
    await load(db, tables, [submission('kobo', 'aHouse', key, koboRecord(h, { instance: 'uuid:e1' }), { updatedAt: '2026-11-16T07:00:00.000Z' })]);
    expect(await count()).toBe(3);
    const edited = { ...h, members: h.members.slice(0, 2) };
    await load(db, tables, [submission('kobo', 'aHouse', key, koboRecord(edited, { instance: 'uuid:e2' }), { updatedAt: '2026-11-17T07:00:00.000Z', replaces: 'uuid:e1' })]);
    expect(await count()).toBe(2);
    // The older version arriving late changes nothing: typed rows follow Submission's newest-wins.
    await load(db, tables, [submission('kobo', 'aHouse', key, koboRecord(h, { instance: 'uuid:e1' }), { updatedAt: '2026-11-16T07:00:00.000Z' })]);
    expect(await count()).toBe(2);

    const deleted = async () => {
      const v = (await db.sql.query<{ d: unknown }>(`SELECT _deleted AS d FROM ${rel(dialect, 'household_survey')} WHERE _key = ?`, [key]))[0]!.d;
      return v === true || Number(v) === 1;
    };
    await load(db, tables, [submission('kobo', 'aHouse', key, {}, { version: 'uuid:e2', deleted: true, observedAt: '2026-11-18T00:00:00.000Z', via: 'sweep', updatedAt: '2026-11-17T07:00:00.000Z' })]);
    expect(await deleted()).toBe(true);
    expect(await count()).toBe(2); // the stored copy keeps its answers
    await load(db, tables, [submission('kobo', 'aHouse', key, koboRecord(edited, { instance: 'uuid:e2' }), { updatedAt: '2026-11-17T07:00:00.000Z', observedAt: '2026-11-19T00:00:00.000Z', replaces: 'uuid:e1' })]);
    expect(await deleted()).toBe(false);
  });

  it('"n/a" in an integer loads as NULL, stays intact in Submission, and is counted', async () => {
    const h = household(900);
    const rec = { ...koboRecord(h), 'hh/hh_size': 'n/a', 'hh/visit_date': 'yesterday' };
    const unfit = await load(db, tables, [submission('kobo', 'aHouse', '900', rec)]);
    expect(unfit).toBe(2);
    const [row] = await db.sql.query<{ s: unknown; d: unknown; v: string }>(`SELECT hh__hh_size AS s, hh__visit_date AS d, hh__village AS v FROM ${rel(dialect, 'household_survey')} WHERE _key = '900'`);
    expect(row).toEqual({ s: null, d: null, v: h.village });
    const raw = await db.prisma.submission.findFirst({ where: { sourceId: 'kobo', formId: 'aHouse', key: '900' } });
    expect((raw!.data as Record<string, unknown>)['hh/hh_size']).toBe('n/a');
  });

  it('text with tabs, line breaks, backslashes, \\N and \\. lands verbatim in parent and child rows', async () => {
    // PostgreSQL writes typed rows with COPY's text format, where each of these means something.
    const hostile = ['a\tb', 'line1\nline2\r\nline3', 'C:\\path\\N', '\\N', '\\.', 'naïve — 東京', ' padded '];
    const h = { ...household(910, rng(910), true) };
    h.members = hostile.map((name, i) => ({ name, age: i, visits: [] }));
    const rec = { ...koboRecord(h), 'hh/village': hostile.join('|') };
    await load(db, tables, [submission('kobo', 'aHouse', '910', rec)]);
    const [row] = await db.sql.query<{ v: string }>(`SELECT hh__village AS v FROM ${rel(dialect, 'household_survey')} WHERE _key = '910'`);
    expect(row!.v).toBe(hostile.join('|'));
    const names = await db.sql.query<{ n: string; i: number }>(`SELECT name AS n, _index AS i FROM ${rel(dialect, 'household_survey__members')} WHERE _root = '910' ORDER BY _index`);
    expect(names.map((x) => x.n)).toEqual(hostile);
    expect(names.map((x) => Number(x.i))).toEqual(hostile.map((_, i) => i + 1));
  });

  it('random out-of-order, duplicate, edited and deleted deliveries leave the typed tables equal to a fresh rebuild', async () => {
    const r = rng(42);
    const formId = 'aRand';
    await storeDefinition(db, definition({ sourceId: 'kobo', formId, shape: 'kobo', title: 'Random rounds' }));
    for (let round = 0; round < 6; round++) {
      const deliveries: CanonicalSubmission[] = [];
      for (let k = 0; k < 25; k++) {
        const key = String(round * 10 + Math.floor(r() * 15));
        const edits = Math.floor(r() * 4);
        for (let e = 0; e <= edits; e++) {
          const h = household(Number(key) * 10 + e, r);
          const ts = new Date(Date.UTC(2026, 10, 1 + e, Math.floor(r() * 24))).toISOString();
          const del = r() < 0.15;
          deliveries.push(submission('kobo', formId, key, del ? {} : koboRecord(h, { instance: `uuid:${key}-${e}` }), {
            version: `uuid:${key}-${e}`, replaces: e > 0 ? `uuid:${key}-${e - 1}` : null, updatedAt: ts, deleted: del,
            observedAt: new Date(Date.UTC(2026, 10, 1, 0, 0, Math.floor(r() * 1000))).toISOString(), via: del ? 'sweep' : r() < 0.3 ? 'webhook' : 'poll',
          }));
          if (r() < 0.3) deliveries.push(deliveries[deliveries.length - 1]!); // duplicate
        }
      }
      // shuffle, then load in random batch sizes
      for (let i = deliveries.length - 1; i > 0; i--) {
        const j = Math.floor(r() * (i + 1));
        [deliveries[i], deliveries[j]] = [deliveries[j]!, deliveries[i]!];
      }
      for (let i = 0; i < deliveries.length; ) {
        const n = 1 + Math.floor(r() * 12);
        await load(db, tables, deliveries.slice(i, i + n));
        i += n;
      }
    }
    const names = ['random_rounds', 'random_rounds__members', 'random_rounds__members__visits'];
    const before = await Promise.all(names.map((n) => dump(db, n)));
    expect(before[0]!.length).toBeGreaterThan(20);
    expect(before[1]!.length).toBeGreaterThan(5);
    const [res] = await new TypedTables(dialect, { refreshMs: 0, sources: { kobo: { choiceColumns: true } } }).rebuild(db, 'kobo', formId);
    expect(res!.records).toBe(before[0]!.length);
    const after = await Promise.all(names.map((n) => dump(db, n)));
    expect(after).toEqual(before);
  });

  it('a new version adds a column (older rows NULL); a type change adds a second column and keeps both', async () => {
    const formId = 'aEvolve';
    const v1 = definition({ sourceId: 'kobo', formId, shape: 'kobo', title: 'Evolving', version: 'v1', fields: householdFields([field(['score'], 'integer', 'Score')]) });
    await storeDefinition(db, v1, new Date('2026-11-01T00:00:00Z'));
    await load(db, tables, [submission('kobo', formId, '1', { ...koboRecord(household(1), { version: 'v1' }), score: '7' })]);
    const v2 = definition({
      sourceId: 'kobo', formId, shape: 'kobo', title: 'Evolving', version: 'v2',
      fields: householdFields([field(['score'], 'text', 'Score (free text)'), field(['phone'], 'text', 'Phone number')]),
    });
    await storeDefinition(db, v2, new Date('2026-11-02T00:00:00Z'));
    await load(db, tables, [submission('kobo', formId, '2', { ...koboRecord(household(2), { version: 'v2' }), score: 'high', phone: '+254 700' })]);
    const cols = await columnsOf(db, 'evolving');
    expect(cols).toMatchObject({ score: T.bigint, score__text: T.text, phone: T.text });
    const rows = await db.sql.query<{ k: string; s: unknown; st: unknown; p: unknown }>(`SELECT _key AS k, score AS s, score__text AS st, phone AS p FROM ${rel(dialect, 'evolving')} ORDER BY _key`);
    expect(rows.map((x) => ({ ...x, s: x.s === null ? null : Number(x.s) }))).toEqual([
      { k: '1', s: 7, st: null, p: null },
      { k: '2', s: null, st: 'high', p: '+254 700' },
    ]);
  });

  it('long, non-ASCII, colliding and hostile names become distinct safe identifiers within the limit, stable across restart and rebuild', async () => {
    const formId = 'aNames';
    const long = 'a_very_long_question_name_that_goes_on_and_on_for_more_than_seventy_chars';
    const hostile = ['x"; DROP TABLE "Submission"; --', 'y`; DROP TABLE `Submission`; --', 'select', '__proto__', "it's", 'constructor'];
    const fields = [
      field(['grp_with_a_long_name', long], 'text', 'Long one'),
      field(['grp_with_a_long_name', `${long}_2`], 'integer', 'Long two'),
      field(['grp_with_a_long_name', `${long}_3`], 'decimal', 'Long three'),
      field(['café'], 'text', 'Café'), field(['cafe'], 'text', 'Cafe'), field(['名前'], 'text', 'Name (ja)'), field(['🌩'], 'text', 'Storm'), field(['🤟'], 'text', 'Hand'),
      field(['a_b', 'c'], 'text'), field(['a', 'b_c'], 'text'), field(['a__b__c'], 'text'), field(['a', 'b', 'c'], 'text'), field(['_key'], 'text', 'Not the system key'),
      ...hostile.map((h) => field([h], 'text', `label ' with -- quote ${h}`)),
    ];
    await storeDefinition(db, definition({ sourceId: 'kobo', formId, shape: 'kobo', title: "Robert'); DROP TABLE Students;--", fields, choices: [] }));
    const data: Record<string, unknown> = { _id: 1, [`grp_with_a_long_name/${long}`]: 'L', 'café': 'accent', cafe: 'plain', '名前': '山田 🌩', '🌩': 'storm', '🤟': 'hand', 'a_b/c': 'ab-c', 'a/b_c': 'a-bc', a__b__c: 'abc', 'a/b/c': 'a-b-c', _key: 'fake' };
    // defineProperty: `data['__proto__'] = …` would set the prototype, not a key (JSON.parse makes it a key).
    for (const h of hostile) Object.defineProperty(data, h, { value: `v:${h}`, enumerable: true, writable: true, configurable: true });
    await load(db, tables, [submission('kobo', formId, '1', data)]);

    const dict = async () => (await db.sql.query<{ path: string; table_name: string; column_name: string }>(`SELECT path, table_name, column_name FROM ${rel(dialect, '_fieldsync_columns')} WHERE form_id = ? ORDER BY path`, [formId]));
    const first = await dict();
    expect(first.length).toBe(fields.length);
    const names = first.map((c) => c.column_name);
    expect(new Set(names).size).toBe(names.length);
    for (const n of names) {
      expect(n).toMatch(/^[a-z0-9_]+$/);
      expect(Buffer.byteLength(n)).toBeLessThanOrEqual(dialect === 'postgresql' ? 63 : 64);
    }
    const table = first[0]!.table_name;
    expect(table).toMatch(/^[a-z0-9_]+$/);
    expect(names).not.toContain('_key');
    const cols = await columnsOf(db, table);
    for (const n of names) expect(Object.keys(cols)).toContain(n);
    // Nothing was executed: the raw table is still there, the values landed as text.
    expect(await db.prisma.submission.count()).toBeGreaterThan(0);
    const col = (path: string) => first.find((c) => c.path === path)!.column_name;
    const [row] = await db.sql.query<Record<string, unknown>>(`SELECT * FROM ${rel(dialect, table)} WHERE _key = '1'`);
    expect(row![col('café')]).toBe('accent');
    expect(row![col('cafe')]).toBe('plain');
    expect(row![col('🌩')]).toBe('storm');
    expect(row![col('名前')]).toBe('山田 🌩');
    expect(row![col('🤟')]).toBe('hand');
    expect(row![col('_key')]).toBe('fake');
    expect(row![col('a__b__c')]).toBe('abc');
    expect(row![col('a/b/c')]).toBe('a-b-c');
    expect(col(`grp_with_a_long_name/${long}`).length).toBe(dialect === 'postgresql' ? 63 : 64);
    expect(row!._key).toBe('1');
    for (const h of hostile) expect(row![col(h)]).toBe(`v:${h}`);

    // A new process (empty cache) and a rebuild choose the same names.
    const fresh = new TypedTables(dialect, { refreshMs: 0, sources: { kobo: { choiceColumns: true } } });
    await fresh.rebuild(db, 'kobo', formId);
    expect(await dict()).toEqual(first);
    const [again] = await db.sql.query<Record<string, unknown>>(`SELECT * FROM ${rel(dialect, table)} WHERE _key = '1'`);
    expect(again).toEqual(row);
  });

  it('a failure in the typed layer rolls back only the typed rows: raw rows load, and the form is rewritten once it works again', async () => {
    const formId = 'aBroken';
    await storeDefinition(db, definition({ sourceId: 'kobo', formId, shape: 'kobo', title: 'Broken' }));
    await load(db, tables, [submission('kobo', formId, '1', koboRecord(household(1, rng(1), true)))]);
    // Someone drops a child table under fieldsync's feet.
    await db.sql.execute(`DROP TABLE ${rel(dialect, 'broken__members__visits')}`);
    await load(db, tables, [submission('kobo', formId, '2', koboRecord(household(2, rng(2), true)))]);
    expect(await db.prisma.submission.count({ where: { formId } })).toBe(2);
    expect((await dump(db, 'broken')).length).toBe(1); // its typed rows were rolled back
    // The next batch plans again (re-creating the table) and rewrites the whole form.
    await load(db, tables, [submission('kobo', formId, '3', koboRecord(household(3, rng(3), true)))]);
    expect((await dump(db, 'broken')).length).toBe(3);
    const before = await Promise.all(['broken', 'broken__members', 'broken__members__visits'].map((n) => dump(db, n)));
    await new TypedTables(dialect, { refreshMs: 0, sources: { kobo: { choiceColumns: true } } }).rebuild(db, 'kobo', formId);
    expect(await Promise.all(['broken', 'broken__members', 'broken__members__visits'].map((n) => dump(db, n)))).toEqual(before);
  });

  it('two loaders planning the same new form at once agree on every name', async () => {
    const formId = 'aTwice';
    await storeDefinition(db, definition({ sourceId: 'kobo', formId, shape: 'kobo', title: 'Twice' }));
    const batch = [submission('kobo', formId, '1', koboRecord(household(1, rng(1), true)))];
    const [a, b] = await Promise.all([new TypedTables(dialect, { refreshMs: 0 }).plan(db, 'kobo', formId), new TypedTables(dialect, { refreshMs: 0 }).plan(db, 'kobo', formId)]);
    expect(a!.tables.map((t) => [t.name, t.columns.map((c) => c.name)])).toEqual(b!.tables.map((t) => [t.name, t.columns.map((c) => c.name)]));
    await load(db, tables, batch);
    expect((await dump(db, 'twice')).length).toBe(1);
  });

  it('skips typed rows for a form without a definition and for a source switched off; raw rows still load', async () => {
    const off = new TypedTables(dialect, { refreshMs: 0, sources: { kobo: { enabled: false } } });
    expect(await off.prepare(db, [submission('kobo', 'aHouse', '777', koboRecord(household(777)))])).toBeNull();
    await load(db, tables, [submission('kobo', 'aNoDefinition', '1', { x: '1' })]);
    expect(await db.prisma.submission.count({ where: { formId: 'aNoDefinition' } })).toBe(1);
    await expect(off.rebuild(db, 'kobo')).rejects.toThrow(/switched off/);
  });

  it('fills typed rows loaded before the definition, and rewrites rows of a version whose definition arrives late', async () => {
    const formId = 'aLate';
    await load(db, tables, [submission('kobo', formId, '1', koboRecord(household(1)))]);
    await storeDefinition(db, definition({ sourceId: 'kobo', formId, shape: 'kobo', title: 'Late form' }), new Date('2026-11-01T00:00:00Z'));
    // A v2 record arrives while only v1 is defined: typed with v1's layout for now.
    await load(db, tables, [submission('kobo', formId, '2', { ...koboRecord(household(2), { version: 'v2' }), extra: 'new question' })]);
    const keys = async () => (await db.sql.query<{ k: string }>(`SELECT _key AS k FROM ${rel(dialect, 'late_form')} ORDER BY _key`)).map((r) => r.k);
    expect(await keys()).toEqual(['1', '2']);
    await storeDefinition(db, definition({ sourceId: 'kobo', formId, shape: 'kobo', title: 'Late form', version: 'v2', fields: householdFields([field(['extra'], 'text', 'Extra')]) }), new Date('2026-11-02T00:00:00Z'));
    await load(db, tables, [submission('kobo', formId, '3', koboRecord(household(3), { version: 'v2' }))]);
    const [row] = await db.sql.query<{ e: string | null }>(`SELECT extra AS e FROM ${rel(dialect, 'late_form')} WHERE _key = '2'`);
    expect(row?.e).toBe('new question');
    const before = await dump(db, 'late_form');
    await new TypedTables(dialect, { refreshMs: 0, sources: { kobo: { choiceColumns: true } } }).rebuild(db, 'kobo', formId);
    expect(await dump(db, 'late_form')).toEqual(before);
  });

  it('a file recorded in Attachment shows its location in <question>_stored, whether recorded before or after the typed row; a rebuild gives the same', async () => {
    const formId = 'aFiles';
    await storeDefinition(db, definition({ sourceId: 'kobo', formId, shape: 'kobo', title: 'Files form' }));
    const withPhoto = Array.from({ length: 40 }, (_, i) => household(i + 1)).filter((x) => x.photo).slice(0, 3);
    const [a, b, c] = withPhoto.map((x) => ({ key: String(x.id), name: x.photo!, location: `s3://media/kobo/${formId}/${x.id}/${x.photo}` }));
    const record = (f: typeof a) => db.prisma.attachment.create({ data: { sourceId: 'kobo', formId, submissionKey: f!.key, name: f!.name, size: 3n, sha256: '0'.repeat(64), location: f!.location, storedAt: new Date() } });
    const cells = async () => db.sql.query<{ k: string; p: string | null; s: string | null }>(`SELECT _key AS k, hh__photo AS p, hh__photo_stored AS s FROM ${rel(dialect, 'files_form')} ORDER BY _key`);
    await load(db, tables, withPhoto.slice(0, 2).map((x) => submission('kobo', formId, String(x.id), koboRecord(x))));
    expect((await cells()).map((r) => r.s)).toEqual([null, null]);
    // The usual order: typed row first, then the attachment worker records the file and re-applies that key.
    await record(a);
    expect(await tables.applyKeys(db, 'kobo', formId, [a!.key])).toBe(1);
    // The other order: the file is already recorded when the loader types the row (looked up in the batch).
    await record(c);
    await load(db, tables, [submission('kobo', formId, c!.key, koboRecord(withPhoto[2]!))]);
    const want = [a, b, c].map((f) => ({ k: f!.key, p: f!.name, s: f === b ? null : f!.location })).sort((x, y) => (x.k < y.k ? -1 : 1));
    expect(await cells()).toEqual(want);
    // The column sits next to the file name, named in the data dictionary like any other.
    const cols = Object.keys(await columnsOf(db, 'files_form'));
    const [dict] = await db.sql.query<{ c: string; l: string }>(`SELECT column_name AS c, label AS l FROM ${rel(dialect, '_fieldsync_columns')} WHERE source_id = 'kobo' AND form_id = ? AND path = 'hh/photo' AND part = 'stored'`, [formId]);
    expect(dict).toEqual({ c: 'hh__photo_stored', l: 'Photo of the house (stored)' });
    if (dialect === 'mysql') expect(cols.indexOf('hh__photo_stored')).toBe(cols.indexOf('hh__photo') + 1); // information_schema order is ordinal on MySQL
    const before = await dump(db, 'files_form');
    await new TypedTables(dialect, { refreshMs: 0, sources: { kobo: { choiceColumns: true } } }).rebuild(db, 'kobo', formId);
    expect(await dump(db, 'files_form')).toEqual(before);
    // Tables typed by a fieldsync without the column: it is added and every row rewritten at the next planning.
    await db.sql.execute(`ALTER TABLE ${rel(dialect, 'files_form')} DROP COLUMN hh__photo_stored`);
    await db.sql.execute(`DELETE FROM ${rel(dialect, '_fieldsync_columns')} WHERE source_id = 'kobo' AND form_id = ? AND part = 'stored'`, [formId]);
    await new TypedTables(dialect, { refreshMs: 0, sources: { kobo: { choiceColumns: true } } }).plan(db, 'kobo', formId);
    expect(await dump(db, 'files_form')).toEqual(before);
  });
});
