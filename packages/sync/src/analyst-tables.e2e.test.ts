/**
 * Analyst tables end to end: the Kobo and ODK simulators' demo forms, their
 * definitions read by the real connectors (no fixtures), backfilled through
 * poll runner → ingest queue → loader into typed tables, on both databases.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type KoboSourceConfig, type OdkSourceConfig } from '@fieldsync/config';
import type { Dialect } from '@fieldsync/db';
import { drained } from '@fieldsync/queues/testing';
import { KoboConnector, OdkConnector } from '@fieldsync/connectors';
import { startKoboSimulator, startOdkSimulator, findKoboNode, koboQuestion, HOUSEHOLD_FORM, type KoboSimulator, type OdkSimulator, type KoboRecord, type KoboQuestion } from '@fieldsync/simulator';
import { TypedTables } from '@fieldsync/tables';
import { runPoll, type PollMode } from './poll.runner.ts';
import { openHarness, koboTestConfig, testLog as log, type Harness } from './testing.ts';

const ODK_FORM = HOUSEHOLD_FORM.xmlFormId;
type Obj = Record<string, unknown>;
const arr = (v: unknown): Obj[] => (Array.isArray(v) ? (v as Obj[]) : []);

describe.each<Dialect>(['postgresql', 'mysql'])('analyst tables from the simulators on %s', (dialect) => {
  let h: Harness;
  let kobo: KoboSimulator;
  let odk: OdkSimulator;
  let asset: string;
  let koboConn: KoboConnector;
  let odkConn: OdkConnector;
  let koboRunId: bigint;
  const pg = dialect === 'postgresql';
  const rel = (t: string) => (pg ? `"fieldsync"."${t}"` : `\`${t}\``);
  const count = async (sql: string, params: unknown[] = []) => Number((await h.db.sql.query<{ n: number | string }>(sql, params))[0]!.n);
  /** Column name → data type of a typed table, from information_schema. */
  const columns = async (table: string): Promise<Record<string, string>> => {
    const rows = await h.db.sql.query<{ c: string; t: string }>(
      pg
        ? `SELECT column_name AS c, data_type AS t FROM information_schema.columns WHERE table_schema = 'fieldsync' AND table_name = ?`
        : `SELECT column_name AS c, column_type AS t FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ?`,
      [table],
    );
    return Object.fromEntries(rows.map((r) => [r.c, r.t.toLowerCase()]));
  };
  const T = pg
    ? { int: 'bigint', num: 'numeric', text: 'text', date: 'date', ts: 'timestamp with time zone', bool: 'boolean' }
    : { int: 'bigint(20)', num: 'decimal(38,12)', text: 'mediumtext', date: 'date', ts: 'datetime(3)', bool: 'tinyint(1)' };
  const poll = async (connector: KoboConnector | OdkConnector, formId: string, mode: PollMode) => {
    const s = await runPoll({ db: h.db, queues: h.queues, log, batchSize: 25 }, { connector, formId, mode });
    await drained(h.queues.ingest);
    return s;
  };

  beforeAll(async () => {
    h = await openHarness(dialect);
    h.startLoader({ tables: new TypedTables(dialect, { refreshMs: 0 }) });
    kobo = await startKoboSimulator({ submissions: 60, seed: 21 });
    asset = kobo.assetUids[0]!;
    // A value that does not fit its column, as a careless export or a form typo produces it.
    kobo.editSubmission(asset, 3, { 'household/respondent_age': 'n/a' });
    koboConn = new KoboConnector(koboTestConfig(kobo, { forms: [asset] }).sources[0] as KoboSourceConfig, { logger: log });
    odk = await startOdkSimulator({ seed: 21, sessionTtlMs: 3_600_000 });
    odk.seedSubmissions(ODK_FORM, 40, { stepMs: 1000, endAt: Date.now() - 60_000 });
    const odkCfg = parseConfig(
      JSON.stringify({
        sources: [{
          id: 'odk', kind: 'odk', baseUrl: odk.url, projectId: odk.projectId, forms: [ODK_FORM],
          auth: { session: { email: odk.email, password: '${ODK_PASSWORD}' } },
          http: { timeoutMs: 5000, retries: 4, backoffMs: 50, maxBackoffMs: 2000 },
        }],
      }),
      'test.json',
      { ODK_PASSWORD: odk.password },
    );
    odkConn = new OdkConnector(odkCfg.sources[0] as OdkSourceConfig, { logger: log });
    koboRunId = (await poll(koboConn, asset, 'backfill')).runId;
    await poll(odkConn, ODK_FORM, 'backfill');
  });
  afterAll(async () => {
    await h?.close();
    await kobo?.close();
    await odk?.close();
  });

  it('Kobo: a table per form and per repeat (nested too), typed columns from the deployed definition, notes left out', async () => {
    const tables = await h.db.sql.query<{ table_name: string; parent_table: string | null }>(`SELECT table_name, parent_table FROM ${rel('_fieldsync_tables')} WHERE source_id = 'kobo' ORDER BY table_name`);
    expect(tables).toEqual([
      { table_name: 'household_survey_1', parent_table: null },
      { table_name: 'household_survey_1__members', parent_table: 'household_survey_1' },
      { table_name: 'household_survey_1__members__illnesses', parent_table: 'household_survey_1__members' },
    ]);
    const parent = await columns('household_survey_1');
    expect(parent).toMatchObject({
      _key: pg ? 'text' : 'varchar(191)', _deleted: T.bool, _submitted_at: T.ts, _updated_at: T.ts, _form_version: 'text', _review_state: 'text',
      start: T.ts, end: T.ts, today: T.date,
      household__respondent_name: T.text, household__respondent_age: T.int, household__consent: T.text, household__member_count: T.text,
      crops_grown: T.text, monthly_income: T.num, visit_date: T.date, arrival_time: T.ts,
      location_latitude: T.num, location_longitude: T.num, location_altitude: T.num, location_accuracy: T.num,
      photo: T.text, photo_url: T.text, comments: T.text,
    });
    expect(Object.keys(parent).filter((c) => c.includes('intro'))).toEqual([]);
    expect(await columns('household_survey_1__members')).toMatchObject({ _key: expect.any(String), _parent: expect.any(String), _index: expect.stringMatching(/^int/), member_name: T.text, member_age: T.int, member_sex: T.text });
    expect(await columns('household_survey_1__members__illnesses')).toMatchObject({ _parent: expect.any(String), illness: T.text, days_sick: T.int });
  });

  it('Kobo: row counts and parent-child JOINs equal what the simulator holds, values typed from its strings', async () => {
    const recs = kobo.records(asset);
    const members = recs.flatMap((r) => arr(r['household/members']));
    const illnesses = members.flatMap((m) => arr(m['household/members/illnesses']));
    expect(members.length).toBeGreaterThan(20);
    expect(illnesses.length).toBeGreaterThan(5);
    expect(await count(`SELECT count(*) AS n FROM ${rel('household_survey_1')}`)).toBe(recs.length);
    expect(await count(`SELECT count(*) AS n FROM ${rel('household_survey_1')} h JOIN ${rel('household_survey_1__members')} m ON m._parent = h._key`)).toBe(members.length);
    expect(await count(`SELECT count(*) AS n FROM ${rel('household_survey_1__members')} m JOIN ${rel('household_survey_1__members__illnesses')} i ON i._parent = m._key`)).toBe(illnesses.length);
    // Per household, as a dashboard groups it.
    const per = await h.db.sql.query<{ k: string; n: number | string }>(`SELECT h._key AS k, count(m._key) AS n FROM ${rel('household_survey_1')} h LEFT JOIN ${rel('household_survey_1__members')} m ON m._parent = h._key GROUP BY h._key`);
    expect(Object.fromEntries(per.map((p) => [p.k, Number(p.n)]))).toEqual(Object.fromEntries(recs.map((r) => [String(r._id), arr(r['household/members']).length])));

    const r = recs.find((x) => typeof x.location === 'string' && typeof x.monthly_income === 'string' && x._id !== 3)! as KoboRecord;
    const [row] = await h.db.sql.query<Obj>(
      `SELECT household__respondent_age AS age, monthly_income AS inc, visit_date AS d, arrival_time AS t, location_latitude AS lat, location_accuracy AS acc, crops_grown AS crops FROM ${rel('household_survey_1')} WHERE _key = ?`,
      [String(r._id)],
    );
    const [lat, , , acc] = String(r.location).split(' ').map(Number);
    expect(Number(row!.age)).toBe(Number(r['household/respondent_age']));
    expect(Number(row!.inc)).toBe(Number(r.monthly_income));
    expect(Number(row!.lat)).toBe(lat);
    expect(Number(row!.acc)).toBe(acc);
    expect(row!.crops ?? undefined).toBe(r.crops_grown);
    const day = (v: unknown) => (v instanceof Date ? `${v.getFullYear()}-${String(v.getMonth() + 1).padStart(2, '0')}-${String(v.getDate()).padStart(2, '0')}` : String(v).slice(0, 10));
    expect(day(row!.d)).toBe(r.visit_date);
    // An image: the file name, and the attachment's download URL next to it.
    const withPhoto = recs.find((x) => typeof x.photo === 'string')!;
    const [photo] = await h.db.sql.query<{ p: string; u: string }>(`SELECT photo AS p, photo_url AS u FROM ${rel('household_survey_1')} WHERE _key = ?`, [String(withPhoto._id)]);
    expect(photo).toEqual({ p: withPhoto.photo, u: (withPhoto._attachments as { download_url: string }[])[0]!.download_url });
    if (typeof r.arrival_time === 'string') {
      // Device time +03:00 → the same instant (UTC on MySQL).
      const got = row!.t instanceof Date ? row!.t.getTime() : Date.parse(`${String(row!.t).replace(' ', 'T')}Z`);
      expect(got).toBe(Date.parse(r.arrival_time));
    }
  });

  it('"n/a" in an integer question: NULL in the typed table, intact in Submission, counted in the backfill\'s SyncRun row', async () => {
    const [row] = await h.db.sql.query<{ age: unknown }>(`SELECT household__respondent_age AS age FROM ${rel('household_survey_1')} WHERE _key = '3'`);
    expect(row!.age).toBeNull();
    const raw = await h.db.prisma.submission.findUniqueOrThrow({ where: { sourceId_formId_key: { sourceId: 'kobo', formId: asset, key: '3' } } });
    expect((raw.data as Obj)['household/respondent_age']).toBe('n/a');
    const run = await h.db.prisma.syncRun.findUniqueOrThrow({ where: { id: koboRunId } });
    expect(run.unfitValues).toBe(1);
  });

  it('ODK: tables for the top-level repeat, the repeat in a group and the repeat nested in it; types from /fields + XForm', async () => {
    const tables = await h.db.sql.query<{ table_name: string; parent_table: string | null }>(`SELECT table_name, parent_table FROM ${rel('_fieldsync_tables')} WHERE source_id = 'odk' ORDER BY table_name`);
    expect(tables).toEqual([
      { table_name: 'household_survey', parent_table: null },
      { table_name: 'household_survey__animal', parent_table: 'household_survey' },
      { table_name: 'household_survey__animal__vaccination', parent_table: 'household_survey__animal' },
      { table_name: 'household_survey__member', parent_table: 'household_survey' },
    ]);
    const parent = await columns('household_survey');
    expect(parent).toMatchObject({
      today: T.date, respondent__name: T.text, respondent__age: T.int, respondent__birth_date: T.date,
      household_size: T.int, monthly_income: T.num, water_sources: T.text, toilet: T.text,
      location_latitude: T.num, location_longitude: T.num, location_altitude: T.num, location_accuracy: T.num,
      visit_time: T.ts, dwelling_photo: T.text, income_band: T.text, notes: T.text, meta__instanceid: T.text,
    });
    expect(Object.keys(parent).filter((c) => c.includes('intro'))).toEqual([]);
    expect(await columns('household_survey__member')).toMatchObject({ member_name: T.text, member_age: T.int, member_sex: T.text });
    expect(await columns('household_survey__animal')).toMatchObject({ species: T.text, herd_size: T.int });
    expect(await columns('household_survey__animal__vaccination')).toMatchObject({ vaccine: T.text, vaccinated_on: T.date });
    // Labels of the default language into the dictionary, choices with every language.
    const [dict] = await h.db.sql.query<{ label: string; field_type: string }>(`SELECT label, field_type FROM ${rel('_fieldsync_columns')} WHERE source_id = 'odk' AND column_name = 'water_sources'`);
    expect(dict).toEqual({ label: 'Water sources', field_type: 'select_multiple' });
    const [choice] = await h.db.sql.query<{ label: string }>(`SELECT label FROM ${rel('_fieldsync_choices')} WHERE source_id = 'odk' AND list_name = 'water_sources' AND choice_name = 'piped' AND language = 'French (fr)'`);
    expect(choice?.label).toBe('Eau courante');
  });

  it('ODK: row counts and JOINs equal the simulator\'s rows, values equal its typed JSON, child keys are the repeat __ids', async () => {
    const rows = odk.submissionIds(ODK_FORM).map((id) => odk.row(ODK_FORM, id)!);
    const members = rows.flatMap((r) => arr(r.member));
    const animals = rows.flatMap((r) => arr((r.livestock as Obj | undefined)?.animal));
    const vaccinations = animals.flatMap((a) => arr(a.vaccination));
    expect(members.length).toBeGreaterThan(20);
    expect(vaccinations.length).toBeGreaterThan(3);
    expect(await count(`SELECT count(*) AS n FROM ${rel('household_survey')}`)).toBe(rows.length);
    expect(await count(`SELECT count(*) AS n FROM ${rel('household_survey')} h JOIN ${rel('household_survey__member')} m ON m._parent = h._key`)).toBe(members.length);
    expect(await count(`SELECT count(*) AS n FROM ${rel('household_survey')} h JOIN ${rel('household_survey__animal')} a ON a._parent = h._key`)).toBe(animals.length);
    expect(await count(`SELECT count(*) AS n FROM ${rel('household_survey__animal')} a JOIN ${rel('household_survey__animal__vaccination')} v ON v._parent = a._key`)).toBe(vaccinations.length);
    const keys = (await h.db.sql.query<{ k: string }>(`SELECT _key AS k FROM ${rel('household_survey__member')}`)).map((x) => x.k).sort();
    expect(keys).toEqual(members.map((m) => m.__id as string).sort());

    const r = rows.find((x) => x.location && typeof (x.respondent as Obj).age === 'number' && typeof x.monthly_income === 'number')!;
    const [row] = await h.db.sql.query<Obj>(`SELECT respondent__age AS age, monthly_income AS inc, location_longitude AS lon, location_accuracy AS acc, water_sources AS w, _review_state AS rs FROM ${rel('household_survey')} WHERE _key = ?`, [r.__id]);
    const geo = r.location as { coordinates: number[]; properties?: { accuracy?: number } };
    expect(Number(row!.age)).toBe((r.respondent as Obj).age);
    expect(Number(row!.inc)).toBe(r.monthly_income);
    expect(Number(row!.lon)).toBe(geo.coordinates[0]);
    expect(row!.acc === null ? undefined : Number(row!.acc)).toBe(geo.properties?.accuracy);
    expect(row!.w).toBe(r.water_sources);
  });

  it('Kobo: an edit removing a repeat entry → one fewer child row after the sweep; a deletion → _deleted', async () => {
    const rec = kobo.records(asset).find((r) => arr(r['household/members']).length >= 2 && r._id !== 3)!;
    const key = String(rec._id);
    const members = arr(rec['household/members']);
    const childRows = () => count(`SELECT count(*) AS n FROM ${rel('household_survey_1__members')} WHERE _parent = ?`, [key]);
    const illnessRows = () => count(`SELECT count(*) AS n FROM ${rel('household_survey_1__members__illnesses')} WHERE _root = ?`, [key]);
    expect(await childRows()).toBe(members.length);
    const kept = members.slice(1);
    kobo.editSubmission(asset, rec._id, { 'household/members': kept as Record<string, string>[] });
    await poll(koboConn, asset, 'sweep');
    expect(await childRows()).toBe(members.length - 1);
    expect(await illnessRows()).toBe(kept.flatMap((m) => arr(m['household/members/illnesses'])).length);
    const [first] = await h.db.sql.query<{ n: string }>(`SELECT member_name AS n FROM ${rel('household_survey_1__members')} WHERE _parent = ? AND _index = 1`, [key]);
    expect(first!.n).toBe(kept[0]!['household/members/member_name']);

    const gone = kobo.records(asset).at(-1)!;
    kobo.deleteSubmission(asset, gone._id);
    await poll(koboConn, asset, 'sweep');
    const deleted = await h.db.sql.query<{ k: string }>(`SELECT _key AS k FROM ${rel('household_survey_1')} WHERE _deleted = ?`, [true]);
    expect(deleted.map((d) => d.k)).toEqual([String(gone._id)]);
  });

  it('ODK: an edit removing a repeat entry → one fewer child row; a deletion and a restore → _deleted true, then false', async () => {
    const id = odk.submissionIds(ODK_FORM).find((x) => arr(odk.row(ODK_FORM, x)!.member).length >= 2)!;
    const before = arr(odk.row(ODK_FORM, id)!.member).length;
    const childRows = () => count(`SELECT count(*) AS n FROM ${rel('household_survey__member')} WHERE _parent = ?`, [id]);
    expect(await childRows()).toBe(before);
    // The simulator keeps answers as submitted (nested, untyped); drop the first member.
    const stored = odk.row(ODK_FORM, id, { expand: true })!;
    odk.editSubmission(ODK_FORM, id, { member: arr(stored.member).slice(1).map(({ __id: _drop, ...m }) => m) });
    await poll(odkConn, ODK_FORM, 'poll'); // an edit moves updatedAt: the incremental poll sees it
    expect(await childRows()).toBe(before - 1);
    const [parent] = await h.db.sql.query<{ rs: string }>(`SELECT _review_state AS rs FROM ${rel('household_survey')} WHERE _key = ?`, [id]);
    expect(parent!.rs).toBe('edited');

    const deletedFlag = async () => {
      const [x] = await h.db.sql.query<{ d: unknown }>(`SELECT _deleted AS d FROM ${rel('household_survey')} WHERE _key = ?`, [id]);
      return Boolean(Number(x!.d));
    };
    odk.deleteSubmission(ODK_FORM, id);
    await poll(odkConn, ODK_FORM, 'sweep');
    expect(await deletedFlag()).toBe(true);
    expect(await childRows()).toBe(before - 1); // the rows stay, like the raw row
    odk.restoreSubmission(ODK_FORM, id);
    await poll(odkConn, ODK_FORM, 'sweep');
    expect(await deletedFlag()).toBe(false);
  });
  it('a new Kobo version adding a question and retyping another: a new column (older rows NULL), both typed columns kept, the conflict in the SyncRun row', async () => {
    const before = await count(`SELECT count(*) AS n FROM ${rel('household_survey_1')}`);
    kobo.deployVersion(asset, (survey) => {
      const c = findKoboNode(survey, 'comments') as KoboQuestion;
      c.type = 'integer';
      c.answer = () => '7';
      survey.push(koboQuestion('integer', 'rooms', () => '4', { label: ['Rooms', 'Vyumba'] }));
    });
    const [fresh] = kobo.createSubmissions(asset, 1);
    const run = await poll(koboConn, asset, 'poll');
    const cols = await columns('household_survey_1');
    expect(cols).toMatchObject({ comments: T.text, comments__bigint: T.int, rooms: T.int });
    const [row] = await h.db.sql.query<Obj>(`SELECT comments AS c, comments__bigint AS ci, rooms AS r FROM ${rel('household_survey_1')} WHERE _key = ?`, [String(fresh!._id)]);
    expect([row!.c, Number(row!.ci), Number(row!.r)]).toEqual([null, 7, 4]);
    expect(await count(`SELECT count(*) AS n FROM ${rel('household_survey_1')} WHERE rooms IS NULL`)).toBe(before);
    expect(await count(`SELECT count(*) AS n FROM ${rel('household_survey_1')} WHERE comments IS NOT NULL`)).toBeGreaterThan(0);
    const sr = await h.db.prisma.syncRun.findUniqueOrThrow({ where: { id: run.runId } });
    expect(sr.typeChanges).toBe(`kobo/${asset} comments: text → bigint (old column kept, new one added)`);
  });
});
