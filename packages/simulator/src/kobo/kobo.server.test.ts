import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { findKoboNode, koboQuestion, startKoboSimulator, type KoboQuestion, type KoboRecord, type KoboSimulator, type KoboSimulatorOptions } from './index.ts';

/** Kobo's paged envelope (`/data/`, asset listings). */
interface KoboPage<T> {
  count: number;
  next: string | null;
  previous: string | null;
  results: T[];
}
/** A DRF error body. */
interface KoboError {
  detail: string;
}
/** A record as the data API serves it, with the fields the shape test reads. */
interface ServedRecord extends KoboRecord {
  _attachments: Record<string, unknown>[];
  _geolocation: [number | null, number | null];
  location?: string;
  photo?: string;
  'household/members'?: Record<string, string>[];
}
/** An entry of `/api/v2/assets/`. */
interface KoboAssetSummary {
  uid: string;
  name: string;
  asset_type: string;
  data: string;
}
/** `/api/v2/assets/<uid>/` (and a deployed version), as much as the tests read. */
interface KoboAssetDetail {
  content: { survey: Record<string, unknown>[]; choices: Record<string, unknown>[]; translations: (string | null)[] };
  deployed_versions: KoboPage<{ url: string }>;
}

let sim: KoboSimulator | undefined;
afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

async function start(o: KoboSimulatorOptions = {}) {
  sim = await startKoboSimulator({ startTime: new Date('2026-06-01T08:00:00Z'), ...o });
  return { sim, uid: sim.assetUids[0]! };
}

/** GET against the simulator with its token; `params` values that are objects are sent as JSON. */
async function get<T = unknown>(path: string, params: Record<string, unknown> = {}, headers: Record<string, string> = { authorization: `Token ${sim!.token}` }) {
  const u = new URL(path, sim!.url);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, typeof v === 'string' ? v : JSON.stringify(v));
  const res = await fetch(u, { headers });
  return { status: res.status, headers: res.headers, body: (await res.json()) as T };
}
const data = <T = KoboPage<ServedRecord>>(uid: string, params: Record<string, unknown> = {}) => get<T>(`/api/v2/assets/${uid}/data/`, { format: 'json', ...params });

describe('kobo simulator: data API', () => {
  it('serves what the store holds now: a validation status set or an edit made after a page was served shows on the next read', async () => {
    const { sim, uid } = await start({ submissions: 5 });
    const before = (await data(uid)).body.results;
    expect(before.map((r) => r._id)).toEqual(sim.records(uid).map((r) => r._id));
    const [first, second] = before;
    // Seeded records carry random statuses: pick one this record does not have.
    const status = (first!._validation_status as { uid?: string }).uid === 'validation_status_on_hold' ? 'validation_status_approved' : 'validation_status_on_hold';
    sim.validateSubmission(uid, first!._id, status);
    sim.editSubmission(uid, second!._id);
    const after = new Map((await data(uid)).body.results.map((r) => [r._id, r]));
    expect((after.get(first!._id)!._validation_status as { uid?: string }).uid).toBe(status);
    expect(after.get(second!._id)!['meta/instanceID']).not.toBe(second!['meta/instanceID']);
    expect(after.get(second!._id)).toEqual(sim.record(uid, second!._id));
  });

  it('pages with an absolute next/previous envelope, default limit 100, _id ascending', async () => {
    const { uid } = await start({ submissions: 250 });
    const p1 = await data(uid);
    expect(p1.status).toBe(200);
    expect(Object.keys(p1.body)).toEqual(['count', 'next', 'previous', 'results']);
    expect(p1.body.count).toBe(250);
    expect(p1.body.results).toHaveLength(100);
    expect(p1.body.previous).toBeNull();
    const next = new URL(p1.body.next!);
    expect(next.origin).toBe(sim!.url);
    expect(next.searchParams.get('start')).toBe('100');
    expect(next.searchParams.get('limit')).toBe('100');
    expect(next.searchParams.get('format')).toBe('json');

    const p2 = await get<KoboPage<ServedRecord>>(next.pathname + next.search);
    expect(p2.body.results[0]!._id).toBe(p1.body.results[99]!._id + 1);
    expect(new URL(p2.body.previous!).searchParams.has('start')).toBe(false); // back to offset 0
    const p3 = await get<KoboPage<ServedRecord>>(new URL(p2.body.next!).pathname + new URL(p2.body.next!).search);
    expect(p3.body.results).toHaveLength(50);
    expect(p3.body.next).toBeNull();
    const ids = [...p1.body.results, ...p2.body.results, ...p3.body.results].map((r) => r._id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(new Set(ids).size).toBe(250);
  });

  it('cuts a limit above 1000 silently and refuses limit=0', async () => {
    const { uid } = await start({ submissions: 1200 });
    const big = await data(uid, { limit: '30000' });
    expect(big.status).toBe(200);
    expect(big.body.results).toHaveLength(1000);
    expect(big.body.count).toBe(1200);
    expect(new URL(big.body.next!).searchParams.get('limit')).toBe('1000');
    expect((await data(uid, { limit: '0' })).status).toBe(400);
    const bad = await data<KoboError>(uid, { limit: 'lots' });
    expect(bad.status).toBe(400);
    expect(bad.body.detail).toMatch(/limit/);
  });

  it('uses publicUrl for absolute links (a server behind a proxy)', async () => {
    const { uid } = await start({ submissions: 3, publicUrl: 'https://kobo.example.org' });
    const p = await data(uid, { limit: '1' });
    expect(p.body.next).toMatch(/^https:\/\/kobo\.example\.org\/api\/v2\/assets\/.+\/data\/\?.*start=1/);
  });

  it('answers 401 with a detail for missing or wrong tokens', async () => {
    const { uid } = await start({ submissions: 1 });
    const none = await get<KoboError>(`/api/v2/assets/${uid}/data/`, {}, {});
    expect(none.status).toBe(401);
    expect(none.body.detail).toBe('Authentication credentials were not provided.');
    expect((await get(`/api/v2/assets/${uid}/data/`, {}, { authorization: 'Token nope' })).status).toBe(401);
    expect((await get(`/api/v2/assets/${uid}/data/`, {}, { authorization: `Bearer ${sim!.token}` })).status).toBe(401);
    expect((await get('/api/v2/assets/', { q: 'asset_type:survey' }, {})).status).toBe(401);
  });

  it('filters with type-strict Mongo operators', async () => {
    const { uid } = await start({ submissions: 20 });
    const all = sim!.records(uid);
    const ids = (r: { body: KoboPage<ServedRecord> }) => r.body.results.map((x) => x._id);
    expect(ids(await data(uid, { query: { _id: { $gt: 15 } } }))).toEqual([16, 17, 18, 19, 20]);
    // The cursor sent as a string matches nothing, as in MongoDB.
    expect((await data(uid, { query: { _id: { $gt: '15' } } })).body.count).toBe(0);
    expect(ids(await data(uid, { query: { _id: { $gte: 5, $lte: 7 } } }))).toEqual([5, 6, 7]);
    expect(ids(await data(uid, { query: { _id: { $in: [3, 9, 999] } } }))).toEqual([3, 9]);
    expect(ids(await data(uid, { query: { $or: [{ _id: 1 }, { _id: { $lt: 3 } }, { _id: 20 }] } }))).toEqual([1, 2, 20]);
    const t = all[9]!._submission_time as string;
    expect(ids(await data(uid, { query: { _submission_time: { $gte: t } } }))).toEqual(all.slice(9).map((r) => r._id));
    const withComments = all.filter((r) => 'comments' in r).map((r) => r._id);
    expect(ids(await data(uid, { query: { comments: { $exists: true } } }))).toEqual(withComments);
    expect((await data(uid, { query: { comments: { $exists: false } } })).body.count).toBe(20 - withComments.length);
  });

  it('refuses bad JSON and unsupported operators with 400', async () => {
    const { uid } = await start({ submissions: 2 });
    for (const p of [{ query: '{"_id":' }, { sort: '{_id:1}' }, { fields: '[_id]' }, { query: { _id: { $regex: '1' } } }, { fields: { a: 1 } }]) {
      const r = await data<KoboError>(uid, p);
      expect(r.status, JSON.stringify(p)).toBe(400);
      expect(typeof r.body.detail).toBe('string');
    }
  });

  it('sorts by a JSON sort and projects fields (adding _uuid and meta/rootUuid)', async () => {
    const { uid } = await start({ submissions: 5 });
    expect((await data(uid, { sort: { _id: -1 } })).body.results.map((r) => r._id)).toEqual([5, 4, 3, 2, 1]);
    const f = await data(uid, { fields: ['_id', 'meta/instanceID'] });
    for (const r of f.body.results) expect(Object.keys(r).sort()).toEqual(['_id', '_uuid', 'meta/instanceID', 'meta/rootUuid']);
  });

  it('serves records shaped like Kobo: flat paths, string answers, repeats, system fields', async () => {
    const { uid } = await start({ submissions: 60 });
    const recs = (await data(uid)).body.results;
    for (const r of recs) {
      expect(Number.isInteger(r._id)).toBe(true);
      expect(r._xform_id_string).toBe(uid);
      expect(r['meta/instanceID']).toBe(`uuid:${r._uuid}`);
      expect(r['meta/rootUuid']).toBe(r['meta/instanceID']);
      expect(r._submission_time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/);
      expect(typeof r['formhub/uuid']).toBe('string');
      expect(typeof r.__version__).toBe('string');
      for (const k of ['_attachments', '_status', '_geolocation', '_validation_status', '_submitted_by']) expect(r).toHaveProperty(k);
      for (const [k, v] of Object.entries(r)) {
        if (k.startsWith('_') || k === 'household/members') continue;
        expect(typeof v, k).toBe('string'); // every answer a string
        expect(v, k).not.toBe('');
      }
      if ('location' in r) {
        expect(r.location).toMatch(/^-?\d+\.\d+ -?\d+\.\d+ \d+\.\d \d+\.\d$/);
        expect(r._geolocation).toEqual(r.location!.split(' ').slice(0, 2).map(Number));
      } else expect(r._geolocation).toEqual([null, null]);
    }
    const withMembers = recs.filter((r) => 'household/members' in r);
    expect(withMembers.length).toBeGreaterThan(0);
    expect(withMembers.length).toBeLessThan(recs.length); // zero entries: key absent
    for (const r of withMembers) {
      expect(r['household/members']!.length).toBeGreaterThan(0);
      for (const m of r['household/members']!) for (const k of Object.keys(m)) expect(k).toMatch(/^household\/members\//);
    }
    expect(recs.some((r) => typeof r.crops_grown === 'string' && r.crops_grown.includes(' '))).toBe(true);
    expect(recs.some((r) => !('comments' in r))).toBe(true);
    const photo = recs.find((r) => 'photo' in r)!;
    expect(photo._attachments[0]).toMatchObject({ mimetype: 'image/jpeg', question_xpath: 'photo', is_deleted: false, filename: expect.stringContaining(photo.photo!) });
  });

  it('is deterministic for a seed', async () => {
    const a = await startKoboSimulator({ seed: 42, submissions: 5, startTime: new Date('2026-01-01T00:00:00Z') });
    const b = await startKoboSimulator({ seed: 42, submissions: 5, startTime: new Date('2026-01-01T00:00:00Z') });
    const c = await startKoboSimulator({ seed: 43, submissions: 5, startTime: new Date('2026-01-01T00:00:00Z') });
    const strip = (s: KoboSimulator) => JSON.stringify(s.records(s.assetUids[0]!)).replaceAll(s.url, '');
    try {
      expect(a.assetUids).toEqual(b.assetUids);
      expect(strip(a)).toBe(strip(b));
      expect(strip(a)).not.toBe(strip(c));
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
    }
  });

  it('edits like Kobo: same _id, time and rootUuid; new instanceID; deprecatedID = old one', async () => {
    const { uid } = await start({ submissions: 3 });
    const before = sim!.record(uid, 2)!;
    const after = sim!.editSubmission(uid, 2, { 'household/respondent_name': 'Zuri', comments: null });
    const served = (await get<KoboRecord>(`/api/v2/assets/${uid}/data/2/`)).body;
    expect(served).toEqual(after);
    expect(after._id).toBe(2);
    expect(after._submission_time).toBe(before._submission_time);
    expect(after['meta/rootUuid']).toBe(before['meta/rootUuid']);
    expect(after._submitted_by).toBe(before._submitted_by);
    expect(after['meta/instanceID']).not.toBe(before['meta/instanceID']);
    expect(after._uuid).toBe((after['meta/instanceID'] as string).slice(5));
    expect(after['meta/deprecatedID']).toBe(before['meta/instanceID']);
    expect(after['household/respondent_name']).toBe('Zuri');
    expect(after).not.toHaveProperty('comments');
    // A second edit deprecates the first edit's id; a default edit changes answers.
    const again = sim!.editSubmission(uid, 2);
    expect(again['meta/deprecatedID']).toBe(after['meta/instanceID']);
    expect(again['household/respondent_age']).not.toBe(after['household/respondent_age']);
    // After a redeploy, edits carry the new __version__.
    const v2 = sim!.deploy(uid);
    expect(sim!.editSubmission(uid, 1).__version__).toBe(v2);
  });

  it('hard-deletes: the record vanishes from data and counts', async () => {
    const { uid } = await start({ submissions: 4 });
    expect(sim!.deleteSubmission(uid, 3)).toBe(true);
    expect(sim!.deleteSubmission(uid, 3)).toBe(false);
    const r = await data(uid);
    expect(r.body.count).toBe(3);
    expect(r.body.results.map((x) => x._id)).toEqual([1, 2, 4]);
    expect((await get(`/api/v2/assets/${uid}/data/3/`)).status).toBe(404);
  });

  it('can show a smaller _id after larger ones (late visibility)', async () => {
    const { uid } = await start({ submissions: 2 });
    const [late] = sim!.createSubmissions(uid, 1, { hidden: true });
    sim!.createSubmissions(uid, 2);
    expect((await data(uid, { query: { _id: { $gt: 2 } } })).body.results.map((x) => x._id)).toEqual([4, 5]);
    sim!.reveal(uid);
    expect((await data(uid, { query: { _id: { $gt: 2 } } })).body.results.map((x) => x._id)).toEqual([late!._id, 4, 5]);
  });

  it('keeps _id unique across assets', async () => {
    const { uid } = await start({ assets: [{}, {}] });
    const other = sim!.assetUids[1]!;
    sim!.createSubmissions(uid, 2);
    sim!.createSubmissions(other, 2);
    sim!.createSubmissions(uid, 1);
    expect(sim!.records(uid).map((r) => r._id)).toEqual([1, 2, 5]);
    expect(sim!.records(other).map((r) => r._id)).toEqual([3, 4]);
  });

  it('answers injected faults in order, then normally, and logs every request', async () => {
    const { uid } = await start({ submissions: 1 });
    sim!.clearRequests();
    sim!.failNext({ status: 429, retryAfterS: 7 }, { status: 500 });
    const r1 = await data(uid);
    expect(r1.status).toBe(429);
    expect(r1.headers.get('retry-after')).toBe('7');
    expect((await data(uid)).status).toBe(500);
    expect((await data(uid)).status).toBe(200);
    expect(sim!.requests.map((r) => [r.status, r.faulted])).toEqual([[429, true], [500, true], [200, false]]);
    expect(sim!.requests[0]).toMatchObject({ method: 'GET', path: `/api/v2/assets/${uid}/data/`, query: { format: 'json' } });
  });

  it('answers 410 on v1 and 404 on unknown assets', async () => {
    await start();
    expect((await get('/api/v1/data/1')).status).toBe(410);
    expect((await get('/api/v2/assets/aNope/data/')).status).toBe(404);
  });
});

describe('kobo simulator: forms', () => {
  it('lists surveys only with q=asset_type:survey (asset_type= is ignored)', async () => {
    const { uid } = await start({ assets: [{ name: 'Baseline' }] });
    const surveys = await get<KoboPage<KoboAssetSummary>>('/api/v2/assets/', { q: 'asset_type:survey' });
    expect(surveys.body.results.map((a) => a.uid)).toEqual([uid]);
    expect(surveys.body.results[0]).toMatchObject({ name: 'Baseline', asset_type: 'survey', data: `${sim!.url}/api/v2/assets/${uid}/data/` });
    const ignored = await get<KoboPage<KoboAssetSummary>>('/api/v2/assets/', { asset_type: 'survey' });
    expect(ignored.body.count).toBe(2);
    expect(ignored.body.results.map((a) => a.asset_type).sort()).toEqual(['block', 'survey']);
  });

  it('serves the asset content with groups, repeats, $xpath, choices and deployed versions', async () => {
    const { uid } = await start();
    const a = (await get<KoboAssetDetail>(`/api/v2/assets/${uid}/`)).body;
    const rows = a.content.survey;
    const types = rows.map((r) => r.type);
    expect(types).toContain('begin_group');
    expect(types.indexOf('begin_repeat')).toBeGreaterThan(types.indexOf('begin_group'));
    expect(types.indexOf('end_group')).toBeGreaterThan(types.indexOf('end_repeat'));
    expect(rows.find((r) => r.name === 'member_age')).toMatchObject({ type: 'integer', $xpath: 'household/members/member_age', $autoname: 'member_age', label: ['Age', 'Umri'] });
    expect(rows.find((r) => r.name === 'days_sick')).toMatchObject({ $xpath: 'household/members/illnesses/days_sick', label: ['Days sick', null] });
    // A repeat nested in a repeat inside a group.
    expect(types.filter((t) => t === 'begin_repeat')).toHaveLength(2);
    for (const t of ['note', 'calculate', 'datetime', 'date', 'decimal', 'geopoint', 'image', 'select_one', 'select_multiple']) expect(types, t).toContain(t);
    expect(a.content.translations).toEqual(['English (en)', 'Swahili (sw)']);
    expect(rows.find((r) => r.name === 'crops_grown')).toMatchObject({ type: 'select_multiple', select_from_list_name: 'crops' });
    expect(a.content.choices).toContainEqual(expect.objectContaining({ list_name: 'crops', name: 'maize', $autovalue: 'maize', label: ['Maize', 'Mahindi'] }));
    expect(a.deployed_versions.count).toBe(1);
    const v = a.deployed_versions.results[0]!;
    expect((await get<KoboAssetDetail>(new URL(v.url).pathname)).body.content.survey).toEqual(rows);
  });

  it('lists versions newest first (drafts too, ?deployed=true filters) and serves each version its own content', async () => {
    const { uid } = await start({ submissions: 2 });
    const v1 = sim!.records(uid)[0]!.__version__ as string;
    const v2 = sim!.deployVersion(uid, (survey, choices) => {
      choices.crops!.push(['millet', ['Millet', null]]);
      survey.push(koboQuestion('integer', 'household_size', () => '4', { label: ['Household size', 'Ukubwa wa kaya'] }));
      const age = findKoboNode(survey, 'household/respondent_age') as KoboQuestion;
      age.type = 'text';
      age.answer = () => 'about forty';
    });
    const [rec] = sim!.createSubmissions(uid, 1);
    expect(rec).toMatchObject({ __version__: v2, household_size: '4', 'household/respondent_age': 'about forty' });
    expect(sim!.record(uid, 1)!.__version__).toBe(v1); // old records keep theirs

    type VersionItem = { uid: string; url: string; date_deployed: string | false; version_number: string };
    const all = (await get<KoboPage<VersionItem>>(`/api/v2/assets/${uid}/versions/`)).body;
    expect(all.count).toBe(3); // v1, the saved draft, v2
    expect(all.results.map((v) => v.date_deployed === false)).toEqual([false, true, false]);
    expect(all.results.map((v) => v.version_number)).toEqual(['2', '1.1', '1']);
    const deployed = (await get<KoboPage<VersionItem>>(`/api/v2/assets/${uid}/versions/`, { deployed: 'true' })).body;
    expect(deployed.results.map((v) => v.uid)).toEqual([v2, v1]);
    const paged = (await get<KoboPage<VersionItem>>(`/api/v2/assets/${uid}/versions/`, { limit: '1' })).body;
    expect(paged.results).toHaveLength(1);
    expect(new URL(paged.next!).searchParams.get('offset')).toBe('1');

    const content = async (vid: string) => (await get<KoboAssetDetail>(`/api/v2/assets/${uid}/versions/${vid}/`)).body.content.survey;
    expect((await content(v1)).find((r) => r.name === 'respondent_age')).toMatchObject({ type: 'integer' });
    expect((await content(v1)).some((r) => r.name === 'household_size')).toBe(false);
    expect((await content(v2)).find((r) => r.name === 'respondent_age')).toMatchObject({ type: 'text', $kuid: (await content(v1)).find((r) => r.name === 'respondent_age')!.$kuid });
    expect((await content(v2)).find((r) => r.name === 'household_size')).toMatchObject({ type: 'integer', $xpath: 'household_size' });
    const choices = async (vid: string) => (await get<KoboAssetDetail>(`/api/v2/assets/${uid}/versions/${vid}/`)).body.content.choices.map((c) => c.name);
    expect(await choices(v2)).toContain('millet');
    expect(await choices(v1)).not.toContain('millet');
    const asset = (await get<KoboAssetDetail & { deployed_version_id: string; deployment__active: boolean }>(`/api/v2/assets/${uid}/`)).body;
    expect(asset).toMatchObject({ deployed_version_id: v2, deployment__active: true });
    expect(asset.deployed_versions.count).toBe(2);
    expect((await get(`/api/v2/assets/${uid}/versions/vNope/`)).status).toBe(404);
  });

  it('fills records consistently with the form: nested repeats nest, calculates and dateTimes are strings, notes absent', async () => {
    const { uid } = await start({ submissions: 80 });
    const recs = sim!.records(uid);
    const members = recs.flatMap((r) => (r['household/members'] as Record<string, unknown>[] | undefined) ?? []);
    const illnesses = members.flatMap((m) => (m['household/members/illnesses'] as Record<string, string>[] | undefined) ?? []);
    expect(illnesses.length).toBeGreaterThan(0);
    for (const i of illnesses) expect(Object.keys(i).sort()).toEqual(['household/members/illnesses/days_sick', 'household/members/illnesses/illness']);
    for (const r of recs) {
      expect(r['household/member_count']).toBe(String((r['household/members'] as unknown[] | undefined)?.length ?? 0));
      expect(r).not.toHaveProperty('intro');
      if ('arrival_time' in r) expect(r.arrival_time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+03:00$/);
    }
  });
});

describe('kobo simulator: REST Service', () => {
  it('POSTs each newly created submission, never edits or deletes', async () => {
    const got: { body: KoboRecord; ua?: string }[] = [];
    const hook = createServer((req: IncomingMessage, res) => {
      let s = '';
      req.on('data', (c) => (s += c));
      req.on('end', () => {
        got.push({ body: JSON.parse(s) as KoboRecord, ua: req.headers['user-agent'] });
        res.writeHead(201).end();
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`;
      const { uid } = await start({ submissions: 2, restService: { url, hookUid: 'hTest', retryDelaysMs: [1] } });
      sim!.editSubmission(uid, 1);
      sim!.deleteSubmission(uid, 2);
      sim!.createSubmissions(uid, 1, { hidden: true });
      sim!.createSubmissions(uid, 1);
      sim!.reveal(uid);
      const results = await sim!.flushRestService();
      expect(results.map((r) => r.ok)).toEqual([true, true, true, true]);
      expect(got.map((g) => g.body._id).sort()).toEqual([1, 2, 3, 4]);
      // Each POST carries the record as created: the edit made no delivery of its own.
      expect(got.every((g) => !('meta/deprecatedID' in g.body))).toBe(true);
      expect(got[0]!.ua).toMatch(/^KoboToolbox external service - 127\.0\.0\.1:\d+ #hTest$/);
      sim!.setRestService(null);
      sim!.createSubmissions(uid, 1);
      expect(await sim!.flushRestService()).toHaveLength(4);
    } finally {
      hook.closeAllConnections();
      hook.close();
    }
  });
});
