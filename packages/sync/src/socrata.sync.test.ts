/**
 * Socrata end to end below the HTTP edge: simulator → connector → poll runner →
 * ingest queue → loader (typed tables on) → database, on real Redis and databases.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type SocrataSourceConfig } from '@fieldsync/config';
import { loadCursor, type Dialect } from '@fieldsync/db';
import { drained } from '@fieldsync/queues/testing';
import { SocrataConnector } from '@fieldsync/connectors';
import { PET_DATASET, startSocrataSimulator, type SocrataColumn, type SocrataSimulator } from '@fieldsync/simulator';
import { TypedTables } from '@fieldsync/tables';
import { runPoll, type PollMode } from './poll.runner.ts';
import { openHarness, testLog as log, type Harness } from './testing.ts';

const TYPES = 'ty00-pe01';
const TYPE_COLUMNS: SocrataColumn[] = [
  { id: 1, fieldName: 'permit_no', name: 'Permit Number', dataTypeName: 'text' },
  { id: 2, fieldName: 'units', name: 'Units', dataTypeName: 'number' },
  { id: 3, fieldName: 'ratio', name: 'Ratio', dataTypeName: 'double' },
  { id: 4, fieldName: 'fee', name: 'Fee', dataTypeName: 'money' },
  { id: 5, fieldName: 'issued', name: 'Issued', dataTypeName: 'calendar_date' },
  { id: 6, fieldName: 'stamped', name: 'Stamped', dataTypeName: 'date' },
  { id: 7, fieldName: 'active', name: 'Active', dataTypeName: 'checkbox' },
  { id: 8, fieldName: 'site', name: 'Site', dataTypeName: 'point' },
  { id: 9, fieldName: 'address', name: 'Address', dataTypeName: 'location' },
  { id: 10, fieldName: 'link', name: 'Link', dataTypeName: 'url' },
  { id: 11, fieldName: ':@computed_region_abcd_1234', name: 'Region', dataTypeName: 'number' },
];
const FULL_ROW = {
  permit_no: 'P-1', units: '42', ratio: 0.125, fee: '1234.50', issued: '2014-10-13T08:30:00.000', stamped: '2021-02-23T16:03:14.703Z', active: true,
  site: { type: 'Point', coordinates: [-122.335167, 47.608013] },
  address: { latitude: '47.6', longitude: '-122.3', human_address: '{"address": "1 Pine St", "city": "Seattle", "state": "WA", "zip": "98101"}' },
  link: { url: 'https://example.org/p/1', description: 'Permit' },
  ':@computed_region_abcd_1234': '7',
};

describe.each<Dialect>(['postgresql', 'mysql'])('Socrata sync on %s', (dialect) => {
  let h: Harness;
  let sim: SocrataSimulator;
  let connector: SocrataConnector;
  const pets = dialect === 'postgresql' ? '"fieldsync"."seattle_pet_licenses"' : '`seattle_pet_licenses`';

  beforeAll(async () => {
    h = await openHarness(dialect);
    h.startLoader({ tables: new TypedTables(dialect, { refreshMs: 0 }) });
    sim = await startSocrataSimulator({
      pets: 10_000,
      appToken: 'tok',
      datasets: [{ id: TYPES, name: 'Typed Permits', columns: TYPE_COLUMNS, rowIdentifierColumnId: 1, rows: [FULL_ROW, { permit_no: 'P-2' }] }],
    });
    const config = parseConfig(
      JSON.stringify({ sources: [{ id: 'soc', kind: 'socrata', baseUrl: sim.url, datasets: [PET_DATASET, TYPES], appToken: '${SOCRATA_APP_TOKEN}', pageSize: 3000, http: { timeoutMs: 5000, retries: 6, backoffMs: 20, maxBackoffMs: 200 } }] }),
      'test.json',
      { SOCRATA_APP_TOKEN: 'tok' },
    );
    connector = new SocrataConnector(config.sources[0] as SocrataSourceConfig, { logger: log });
  });
  afterAll(async () => {
    await h?.close();
    await sim?.close();
  });

  const poll = async (mode: PollMode, formId = PET_DATASET) => {
    const summary = await runPoll({ db: h.db, queues: h.queues, log, batchSize: 500 }, { connector, formId, mode });
    await drained(h.queues.ingest);
    return summary;
  };
  const live = () => h.db.prisma.submission.count({ where: { sourceId: 'soc', formId: PET_DATASET, deleted: false } });
  const typedLive = async () => Number((await h.db.sql.query<{ n: unknown }>(`SELECT count(*) AS n FROM ${pets} WHERE NOT _deleted`))[0]!.n);
  const row = (key: string) => h.db.prisma.submission.findUniqueOrThrow({ where: { sourceId_formId_key: { sourceId: 'soc', formId: PET_DATASET, key } } });
  const ds = () => sim.dataset(PET_DATASET);

  it('loads 10,000 rows in keyset pages of 3,000 ordered by :id, with the system fields, keyed by :id', async () => {
    sim.resetLog();
    const s = await poll('poll');
    expect(s.fetched).toBe(10_000);
    expect(await live()).toBe(10_000);
    expect(await typedLive()).toBe(10_000);
    const pages = sim.resourceRequests(PET_DATASET).filter((r) => r.query.$select === ':*,*');
    expect(pages.map((p) => p.query.$limit)).toEqual(['3000', '3000', '3000', '3000']);
    expect(pages.every((p) => p.query.$order === ':id')).toBe(true);
    expect(pages[0]!.query.$where).toBeUndefined();
    const third = ds().byId()[5999]![':id'] as string;
    expect(pages[2]!.query.$where).toBe(`:id > '${third}'`);
    const some = ds().byId()[1234]!;
    const stored = await row(some[':id'] as string);
    expect(stored).toMatchObject({ version: some[':version'], deleted: false });
    expect(stored.updatedAt.toISOString()).toBe(some[':updated_at']);
    expect((await loadCursor(h.db, 'soc', PET_DATASET))?.since).toBe([...ds().rows.values()].map((r) => r[':updated_at'] as string).sort().at(-1));
  });

  it('an unchanged dataset costs one request (304 on the stored ETag)', async () => {
    sim.resetLog();
    const s = await poll('poll');
    expect(s.fetched).toBe(0);
    expect(sim.state.log.map((l) => [l.path, l.status])).toEqual([[`/resource/${PET_DATASET}.json`, 304]]);
  });

  it('an incremental run loads only the rows with a newer :updated_at', async () => {
    const [a, b] = ds().byId().slice(10, 12);
    ds().edit(a![':id'] as string, { animal_s_name: 'Renamed' });
    ds().edit(b![':id'] as string, { secondary_breed: null });
    const added = ds().add({ license_number: 'X-1', species: 'Cat', animal_s_name: 'Newbie', license_issue_date: '2025-01-02T00:00:00.000' });
    const before = (await loadCursor(h.db, 'soc', PET_DATASET))!.since as string;
    sim.resetLog();
    const s = await poll('poll');
    expect(s.fetched).toBe(3);
    const page = sim.resourceRequests(PET_DATASET).find((r) => r.query.$select === ':*,*')!;
    expect(page.query.$where).toBe(`:updated_at > '${before.replace(/Z$/, '')}'`);
    expect(await live()).toBe(10_001);
    expect(((await row(a![':id'] as string)).data as Record<string, unknown>).animal_s_name).toBe('Renamed');
    expect((await row(b![':id'] as string)).data).not.toHaveProperty('secondary_breed');
    expect(((await row(added[':id'] as string)).data as Record<string, unknown>).animal_s_name).toBe('Newbie');
  });

  it('429 without Retry-After and 202 "still computing" are backed off and retried', async () => {
    for (const r of ds().byId().slice(20, 26)) ds().edit(r[':id'] as string, { zip_code: '98000' });
    sim.resetLog();
    sim.state.throttleEvery = 2;
    sim.state.computing = 2;
    try {
      const s = await poll('poll');
      expect(s.fetched).toBe(6);
    } finally {
      sim.state.throttleEvery = 0;
    }
    const statuses = sim.resourceRequests(PET_DATASET).map((l) => l.status);
    expect(statuses).toContain(429);
    expect(statuses.filter((x) => x === 202)).toHaveLength(2);
    const zips = await h.db.prisma.submission.findMany({ where: { formId: PET_DATASET }, select: { data: true } });
    expect(zips.filter((z) => (z.data as Record<string, unknown>).zip_code === '98000')).toHaveLength(6);
  });

  it('a row deleted at the source is marked deleted after the sweep', async () => {
    const gone = ds().byId()[500]![':id'] as string;
    ds().remove(gone);
    await poll('sweep');
    expect((await row(gone)).deleted).toBe(true);
    expect(await live()).toBe(10_000);
    expect(await typedLive()).toBe(10_000);
  });

  it('--initialize reloads with no moment where a reader sees fewer rows than before, and drops the rows gone at the source', async () => {
    const gone = ds().byId()[700]![':id'] as string;
    ds().remove(gone); // not swept: only the reload can notice
    expect(await live()).toBe(10_000);
    const seen: { raw: number; typed: number }[] = [];
    let reading = true;
    const reader = (async () => {
      while (reading) seen.push({ raw: await live(), typed: await typedLive() });
    })();
    const s = await poll('backfill');
    seen.push({ raw: await live(), typed: await typedLive() });
    reading = false;
    await reader;
    expect(s.fetched).toBe(9_999);
    expect(seen.length).toBeGreaterThan(5);
    // Only the row the source lost may go, and only once the reload is through.
    expect(Math.min(...seen.map((x) => x.raw))).toBe(9_999);
    expect(Math.min(...seen.map((x) => x.typed))).toBe(9_999);
    expect(seen.at(-1)).toEqual({ raw: 9_999, typed: 9_999 });
    expect((await row(gone)).deleted).toBe(true);
    const run = await h.db.prisma.syncRun.findFirstOrThrow({ where: { id: s.runId } });
    expect(run).toMatchObject({ mode: 'backfill', outcome: 'ok', fetched: 9_999, enqueued: 10_000 });
  });

  it('types columns from /api/views metadata, keys rows by the row identifier, and reads sparse rows as NULLs', async () => {
    await poll('poll', TYPES);
    const keys = (await h.db.prisma.submission.findMany({ where: { formId: TYPES }, select: { key: true }, orderBy: { key: 'asc' } })).map((r) => r.key);
    expect(keys).toEqual(['P-1', 'P-2']);
    const cols = await h.db.sql.query<{ c: string; t: string }>(
      dialect === 'postgresql'
        ? `SELECT column_name AS c, data_type AS t FROM information_schema.columns WHERE table_schema = 'fieldsync' AND table_name = 'typed_permits'`
        : `SELECT COLUMN_NAME AS c, DATA_TYPE AS t FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = 'typed_permits'`,
    );
    const type = Object.fromEntries(cols.map((r) => [r.c, r.t.toLowerCase()]));
    const pg = dialect === 'postgresql';
    expect(type).toMatchObject({
      permit_no: pg ? 'text' : 'mediumtext',
      units: pg ? 'numeric' : 'decimal',
      ratio: pg ? 'numeric' : 'decimal',
      fee: pg ? 'numeric' : 'decimal',
      issued: pg ? 'timestamp without time zone' : 'datetime',
      stamped: pg ? 'timestamp with time zone' : 'datetime',
      active: pg ? 'boolean' : 'tinyint',
      site_latitude: pg ? 'numeric' : 'decimal',
      site_longitude: pg ? 'numeric' : 'decimal',
      address__latitude: pg ? 'numeric' : 'decimal',
      address__longitude: pg ? 'numeric' : 'decimal',
      address__human_address: pg ? 'text' : 'mediumtext',
      link__url: pg ? 'text' : 'mediumtext',
    });
    expect(Object.keys(type).some((c) => c.includes('computed_region'))).toBe(false);
    expect(type).not.toHaveProperty('site_altitude');
    const t = pg ? '"fieldsync"."typed_permits"' : '`typed_permits`';
    const out = pg
      ? `units::text AS units, ratio::text AS ratio, fee::text AS fee, to_char(issued, 'YYYY-MM-DD HH24:MI:SS') AS issued, to_char(stamped AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') AS stamped, active::int AS active, site_latitude::text AS lat, site_longitude::text AS lon`
      : `CAST(units AS CHAR) AS units, CAST(ratio AS CHAR) AS ratio, CAST(fee AS CHAR) AS fee, DATE_FORMAT(issued, '%Y-%m-%d %H:%i:%s') AS issued, DATE_FORMAT(stamped, '%Y-%m-%d %H:%i:%s.%f') AS stamped, CAST(active AS SIGNED) AS active, CAST(site_latitude AS CHAR) AS lat, CAST(site_longitude AS CHAR) AS lon`;
    const rows = await h.db.sql.query<Record<string, unknown>>(`SELECT _key, ${out}, address__human_address AS addr, link__url AS url FROM ${t} ORDER BY _key`);
    const num = (v: unknown) => (v === null ? null : Number(v));
    expect({ ...rows[0], units: num(rows[0]!.units), ratio: num(rows[0]!.ratio), fee: num(rows[0]!.fee), lat: num(rows[0]!.lat), lon: num(rows[0]!.lon), active: Number(rows[0]!.active), stamped: String(rows[0]!.stamped).slice(0, 23) }).toEqual({
      _key: 'P-1', units: 42, ratio: 0.125, fee: 1234.5, issued: '2014-10-13 08:30:00', stamped: '2021-02-23 16:03:14.703', active: 1,
      lat: 47.608013, lon: -122.335167, addr: FULL_ROW.address.human_address, url: 'https://example.org/p/1',
    });
    expect(rows[1]).toEqual({ _key: 'P-2', units: null, ratio: null, fee: null, issued: null, stamped: null, active: null, lat: null, lon: null, addr: null, url: null });
  });
});
