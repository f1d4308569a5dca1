import { afterEach, describe, expect, it } from 'vitest';
import { startOdkSimulator, type OdkSimulator, type OdkSimulatorOptions } from './odk.server.ts';
import { decodeSkiptoken } from './odk.odata.ts';
import { HOUSEHOLD_FORM } from './odk.data.ts';

/** An OData collection envelope (the Submissions feed, the service document). */
interface ODataPage<R = SubmissionRow> {
  value: R[];
  '@odata.context'?: string;
  '@odata.nextLink'?: string;
  '@odata.count'?: number;
}
/** A Submissions row, with the system fields the tests read. */
interface SubmissionRow {
  __id: string;
  __system: { submissionDate: string; updatedAt: string | null; deletedAt: string | null; [k: string]: unknown };
  [k: string]: unknown;
}
/** A household_survey row with `$expand=*`: the respondent group and the member repeat. */
interface HouseholdRow extends SubmissionRow {
  respondent: Record<string, unknown>;
  member?: (Record<string, unknown> & { __id: string })[];
}
/** Central's error body. */
interface OdkProblem {
  code: number;
  message: string;
}

const DOMAIN = 'https://central.example.invalid';
const SVC = '/v1/projects/1/forms/household_survey.svc';
let sim: OdkSimulator;

afterEach(async () => {
  await sim?.close();
});

async function start(o: OdkSimulatorOptions = {}) {
  sim = await startOdkSimulator({ domain: DOMAIN, ...o });
  return sim;
}

async function login(s = sim): Promise<string> {
  const res = await fetch(`${s.url}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: s.email, password: s.password }) });
  expect(res.status).toBe(200);
  return ((await res.json()) as { token: string }).token;
}

/** `T` is what the body is expected to be: parsed JSON, or the raw text when it is not JSON (XML). */
async function get<T = unknown>(path: string, auth?: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${sim.url}${path}`, { headers: { ...(auth ? { authorization: auth.includes(' ') ? auth : `Bearer ${auth}` } : {}), ...headers } });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* xml */
  }
  return { status: res.status, body: body as T, headers: res.headers };
}

/** Follows nextLinks the way a correct client must: path and query onto the simulator's own address. */
async function walk(first: string, token: string) {
  const pages: ODataPage[] = [];
  let path: string | undefined = first;
  while (path) {
    const r: { status: number; body: ODataPage } = await get<ODataPage>(path, token);
    expect(r.status).toBe(200);
    pages.push(r.body);
    const link: string | undefined = r.body['@odata.nextLink'];
    path = link ? new URL(link).pathname + new URL(link).search : undefined;
  }
  return pages;
}

const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

describe('ODK simulator: auth', () => {
  it('opens sessions, refuses bad credentials and expired tokens with 401.2', async () => {
    await start({ submissions: 1 });
    const login1 = await fetch(`${sim.url}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: sim.email, password: 'nope' }) });
    expect(login1.status).toBe(401);
    expect(await login1.json()).toMatchObject({ code: 401.2 });
    const missing = await fetch(`${sim.url}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: sim.email }) });
    expect(((await missing.json()) as { code: number }).code).toBe(400.3);

    const token = await login();
    expect((await get(`${SVC}/Submissions`, token)).status).toBe(200);
    expect((await get(`${SVC}/Submissions`)).body).toMatchObject({ code: 401.2 });
    expect((await get(`${SVC}/Submissions`, 'not-a-token')).body).toMatchObject({ code: 401.2 });
    sim.expireSessions();
    const expired = await get<OdkProblem>(`${SVC}/Submissions`, token);
    expect(expired.status).toBe(401);
    expect(expired.body.code).toBe(401.2);
  });

  it('ends sessions after their TTL', async () => {
    let now = Date.parse('2026-03-01T00:00:00Z');
    await start({ sessionTtlMs: 60_000, now: () => now });
    const res = await fetch(`${sim.url}/v1/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: sim.email, password: sim.password }) });
    const s = (await res.json()) as { token: string; expiresAt: string; createdAt: string };
    expect(Date.parse(s.expiresAt) - Date.parse(s.createdAt)).toBe(60_000);
    now += 59_000;
    expect((await get(`${SVC}/Submissions`, s.token)).status).toBe(200);
    now += 2_000;
    expect((await get<OdkProblem>(`${SVC}/Submissions`, s.token)).body.code).toBe(401.2);
  });

  it('refuses Basic auth over plain HTTP with 401.3, accepts it behind TLS', async () => {
    await start();
    const plain = await get<OdkProblem>(`${SVC}/Submissions`, basic(sim.email, sim.password));
    expect(plain.status).toBe(401);
    expect(plain.body.code).toBe(401.3);
    // Central trusts its nginx's X-Forwarded-Proto.
    expect((await get(`${SVC}/Submissions`, basic(sim.email, sim.password), { 'x-forwarded-proto': 'https' })).status).toBe(200);
    await sim.close();

    await start({ secure: true });
    expect((await get(`${SVC}/Submissions`, basic(sim.email, sim.password))).status).toBe(200);
    expect((await get<OdkProblem>(`${SVC}/Submissions`, basic(sim.email, 'wrong'))).body.code).toBe(401.2);
  });
});

describe('ODK simulator: the Submissions feed', () => {
  it('pages newest first with a keyset $skiptoken built from the configured domain', async () => {
    await start({ submissions: 25 });
    const token = await login();
    const pages = await walk(`${SVC}/Submissions?$top=10&$count=true`, token);
    expect(pages.map((p) => p.value.length)).toEqual([10, 10, 5]);
    expect(pages.every((p) => p['@odata.count'] === 25)).toBe(true);
    expect(pages[0]!['@odata.context']).toBe(`${DOMAIN}${SVC}/$metadata#Submissions`);
    expect('@odata.nextLink' in pages[2]!).toBe(false);

    const link = new URL(pages[0]!['@odata.nextLink']!);
    expect(link.origin).toBe(DOMAIN);
    expect(link.searchParams.get('$top')).toBe('10');
    expect(link.searchParams.get('$count')).toBe('true');
    const token0 = link.searchParams.get('$skiptoken')!;
    expect(token0.startsWith('01')).toBe(true);
    expect(JSON.parse(Buffer.from(token0.slice(2), 'base64').toString())).toEqual({ instanceId: pages[0]!.value[9]!.__id });

    const ids = pages.flatMap((p) => p.value.map((r) => r.__id));
    expect(ids).toEqual(sim.submissionIds('household_survey'));
    const dates = pages.flatMap((p) => p.value.map((r) => Date.parse(r.__system.submissionDate)));
    expect(dates).toEqual([...dates].sort((a, b) => b - a));
  });

  it('pages through rows that share one millisecond (ties broken by Central\'s serial id)', async () => {
    await start();
    const ids = Array.from({ length: 7 }, () => sim.createSubmission('household_survey', { at: '2026-05-01T10:00:00.000Z' }));
    const token = await login();
    const pages = await walk(`${SVC}/Submissions?$top=3`, token);
    expect(pages.map((p) => p.value.length)).toEqual([3, 3, 1]);
    expect(pages.flatMap((p) => p.value.map((r) => r.__id))).toEqual([...ids].reverse());
  });

  it('keeps its keyset position when rows are added or deleted mid-walk', async () => {
    await start({ submissions: 30 });
    const token = await login();
    const before = sim.submissionIds('household_survey');
    const p1 = await get<ODataPage>(`${SVC}/Submissions?$top=10`, token);
    sim.createSubmission('household_survey'); // newer: sorts before the cursor
    sim.deleteSubmission('household_survey', p1.body.value[0]!.__id);
    sim.deleteSubmission('household_survey', p1.body.value[9]!.__id); // the cursor row itself
    const link = new URL(p1.body['@odata.nextLink']!);
    const rest = await walk(link.pathname + link.search, token);
    const ids = [...p1.body.value, ...rest.flatMap((p) => p.value)].map((r) => r.__id);
    expect(ids).toEqual(before); // offset paging would have skipped two and repeated none
  });

  it('answers 501 for what Central does not support, 400 for bad syntax', async () => {
    await start({ submissions: 3 });
    const token = await login();
    const p1 = await get<ODataPage>(`${SVC}/Submissions?$top=1&$orderby=__system/submissionDate asc`, token);
    expect(p1.status).toBe(200);
    const next = new URL(p1.body['@odata.nextLink']!);
    expect(next.searchParams.get('$orderby')).toBe('__system/submissionDate asc');
    const cases: [string, number][] = [
      [next.pathname + next.search, 501.1], // $orderby with a skiptoken
      [`${SVC}/Submissions?$filter=respondent/age gt 30`, 501.5],
      [`${SVC}/Submissions?$filter=contains(__id,'x')`, 501.4],
      [`${SVC}/Submissions?$expand=member`, 501.6],
      [`${SVC}/Submissions?$expand=*&$select=__id`, 501.11],
      [`${SVC}/Submissions?$apply=groupby`, 501.1],
      [`${SVC}/Submissions?$filter=__system/submissionDate ge`, 400.18],
      [`${SVC}/Submissions?$filter=(__id eq 'a'`, 400.18],
      [`${SVC}/Submissions?$skiptoken=02abc`, 400.35],
      [`${SVC}/Submissions?$select=nope`, 400.23],
      [`${SVC}/Submissions?$select=member/member_age`, 400.24],
      ['/v1/projects/1/forms/nope.svc/Submissions', 404.1],
    ];
    for (const [path, code] of cases) {
      const r = await get<OdkProblem>(path, token);
      expect({ path, status: r.status, code: r.body.code }).toEqual({ path, status: Math.floor(code), code });
      expect(typeof r.body.message).toBe('string');
    }
  });

  it('filters on __id and __system with ge/gt/eq/ne/null, and/or; ties at the millisecond', async () => {
    const T = '2026-05-01T10:00:00.123Z';
    await start();
    const tied = [1, 2, 3].map(() => sim.createSubmission('household_survey', { at: T }));
    const older = sim.createSubmission('household_survey', { at: '2026-05-01T10:00:00.122Z' });
    const token = await login();
    const ids = async (filter: string) => (await get<ODataPage>(`${SVC}/Submissions?$filter=${encodeURIComponent(filter)}`, token)).body.value.map((r) => r.__id).sort();
    expect(await ids(`__system/submissionDate ge ${T}`)).toEqual([...tied].sort());
    expect(await ids(`__system/submissionDate gt ${T}`)).toEqual([]);
    expect(await ids(`__system/submissionDate lt ${T}`)).toEqual([older]);
    expect(await ids(`__system/updatedAt eq null`)).toHaveLength(4);
    expect(await ids(`__system/updatedAt ge ${T}`)).toEqual([]); // null compares as unknown
    expect(await ids(`__id eq '${older}' or (__id eq '${tied[0]}' and __system/reviewState eq null)`)).toEqual([older, tied[0]].sort());
    expect(await ids(`__system/submitterId eq 99999`)).toEqual([]);
  });

  it('soft-deletes: out of the feed and the count, listed by a deletedAt filter; restore brings it back', async () => {
    await start({ submissions: 4 });
    const token = await login();
    const [victim] = sim.submissionIds('household_survey');
    sim.deleteSubmission('household_survey', victim!);
    const feed = await get<ODataPage>(`${SVC}/Submissions?$count=true`, token);
    expect(feed.body['@odata.count']).toBe(3);
    expect(feed.body.value.map((r) => r.__id)).not.toContain(victim);
    const trash = await get<ODataPage>(`${SVC}/Submissions?$filter=${encodeURIComponent('__system/deletedAt ne null')}`, token);
    expect(trash.body.value.map((r) => r.__id)).toEqual([victim]);
    expect(Date.parse(trash.body.value[0]!.__system.deletedAt!)).not.toBeNaN();
    sim.restoreSubmission('household_survey', victim!);
    const back = await get<ODataPage>(`${SVC}/Submissions?$count=true`, token);
    expect(back.body['@odata.count']).toBe(4);
    const row = back.body.value.find((r) => r.__id === victim);
    expect(row!.__system).toMatchObject({ deletedAt: null, updatedAt: null });
  });

  it('edits change the version, not the key; reviews set updatedAt', async () => {
    await start();
    const id = sim.createSubmission('household_survey', { at: '2026-05-01T10:00:00.000Z' });
    const v2 = sim.editSubmission('household_survey', id, { household_size: 9 }, { at: '2026-05-02T10:00:00.000Z' });
    let row = sim.row('household_survey', id)!;
    expect(row).toMatchObject({ __id: id, household_size: 9, meta: { instanceID: v2 } });
    expect(row.__system).toMatchObject({ submissionDate: '2026-05-01T10:00:00.000Z', updatedAt: '2026-05-02T10:00:00.000Z', reviewState: 'edited', edits: 1 });
    expect(v2).not.toBe(id);
    sim.setReviewState('household_survey', id, 'approved', { at: '2026-05-03T10:00:00.000Z' });
    row = sim.row('household_survey', id)!;
    expect(row.__system).toMatchObject({ updatedAt: '2026-05-03T10:00:00.000Z', reviewState: 'approved', edits: 1 });
  });

  it('writes rows like Central: nulls, numbers, GeoJSON, repeats inlined only with $expand=*', async () => {
    await start();
    const members = (n: number) => Array.from({ length: n }, (_, i) => ({ member_name: `M${i}`, member_age: 20 + i, member_sex: 'female' }));
    const none = sim.createSubmission('household_survey', { answers: { household_size: 3, monthly_income: 18250.5, water_sources: 'piped rain', location: '12.5 -1.25 300 4.5' } });
    const one = sim.createSubmission('household_survey', { answers: { member: members(1) } });
    const five = sim.createSubmission('household_survey', { answers: { respondent: { age: 41 }, member: members(5) } });
    const token = await login();
    const rows = new Map((await get<ODataPage<HouseholdRow>>(`${SVC}/Submissions?$expand=*`, token)).body.value.map((r) => [r.__id, r] as const));

    const r0 = rows.get(none)!;
    expect(r0).toMatchObject({ household_size: 3, monthly_income: 18250.5, water_sources: 'piped rain', notes: null, respondent: { name: null, age: null, birth_date: null } });
    expect(r0.location).toEqual({ type: 'Point', coordinates: [-1.25, 12.5, 300], properties: { accuracy: 4.5 } });
    expect('member' in r0).toBe(false);
    expect('member@odata.navigationLink' in r0).toBe(false);
    expect(Object.keys(r0).slice(-2)).toEqual(['__id', '__system']);

    const r5 = rows.get(five)!;
    expect(r5.respondent.age).toBe(41);
    expect(r5.member).toHaveLength(5);
    expect(r5.member![4]).toMatchObject({ member_name: 'M4', member_age: 24, member_sex: 'female' });
    expect(r5.member![4]!.__id).toMatch(/^[0-9a-f]{40}$/);
    expect(r5['member@odata.navigationLink']).toBe(`Submissions('${encodeURIComponent(five)}')/member`);
    expect(rows.get(one)!.member).toHaveLength(1);

    const flat = (await get<ODataPage>(`${SVC}/Submissions`, token)).body.value.find((r) => r.__id === five)!;
    expect('member' in flat).toBe(false);
    expect(flat['member@odata.navigationLink']).toBeDefined();
  });

  it('serves $select=__id,__system/updatedAt,__system/deletedAt as just those keys', async () => {
    await start({ submissions: 2 });
    const token = await login();
    const r = await get<ODataPage<Record<string, unknown>>>(`${SVC}/Submissions?$select=__id,__system/updatedAt,__system/deletedAt`, token);
    expect(r.body.value).toHaveLength(2);
    for (const row of r.body.value) expect(row).toEqual({ __id: expect.any(String), __system: { updatedAt: null, deletedAt: null } });
  });

  it('serves the service document and EDMX metadata', async () => {
    await start();
    const token = await login();
    const doc = await get<ODataPage<{ name: string; kind: string; url: string }>>(SVC, token);
    expect(doc.body.value.map((e) => e.name)).toEqual(['Submissions', 'Submissions.member', 'Submissions.livestock.animal', 'Submissions.livestock.animal.vaccination']);
    expect(doc.body['@odata.context']).toBe(`${DOMAIN}${SVC}/$metadata`);
    const md = await get<string>(`${SVC}/$metadata`, token);
    expect(md.headers.get('content-type')).toMatch(/xml/);
    const xml: string = md.body;
    expect(xml).toContain('<ComplexType Name="respondent">');
    expect(xml).toContain('<Property Name="age" Type="Edm.Int64"/>');
    expect(xml).toContain('<Property Name="birth_date" Type="Edm.Date"/>');
    expect(xml).toContain('<Property Name="location" Type="Edm.GeographyPoint"/>');
    expect(xml).toContain('<Property Name="water_sources" Type="Edm.String"/>');
    expect(xml).toContain('<NavigationProperty Name="member" Type="Collection(org.opendatakit.user.household_survey.Submissions.member)"/>');
    expect(xml).toContain('<Property Name="__Submissions-id" Type="Edm.String"/>');
  });
});

describe('ODK simulator: form definitions', () => {
  type Field = { path: string; name: string; type: string; binary: true | null; selectMultiple: true | null };

  it('serves /fields depth first like Central: structure, repeat, bind types, binary and selectMultiple flags', async () => {
    await start();
    const token = await login();
    const fields = (await get<Field[]>('/v1/projects/1/forms/household_survey/fields?odata=true', token)).body;
    expect(Object.keys(fields[0]!)).toEqual(['path', 'name', 'type', 'binary', 'selectMultiple']);
    const by = new Map(fields.map((f) => [f.path, f]));
    expect(fields.map((f) => f.path).slice(0, 6)).toEqual(['/today', '/intro', '/respondent', '/respondent/name', '/respondent/age', '/respondent/birth_date']);
    expect(by.get('/respondent')!.type).toBe('structure');
    expect(by.get('/livestock/animal')).toMatchObject({ type: 'repeat', name: 'animal' });
    expect(by.get('/livestock/animal/vaccination/vaccinated_on')).toMatchObject({ type: 'date' });
    expect(by.get('/water_sources')).toMatchObject({ type: 'string', selectMultiple: true });
    expect(by.get('/toilet')).toMatchObject({ type: 'string', selectMultiple: null });
    expect(by.get('/dwelling_photo')).toMatchObject({ type: 'binary', binary: true });
    expect(by.get('/visit_time')!.type).toBe('dateTime');
    for (const p of ['/intro', '/income_band']) expect(by.get(p)!.type).toBe('string'); // notes and calculates
    expect(fields.at(-1)).toMatchObject({ path: '/meta/instanceID' });
  });

  it('serves the XForm with itext labels and choice lists in secondary instances (pyxform), or plain/inline without translations', async () => {
    await start();
    const token = await login();
    const xml = (await get<string>('/v1/projects/1/forms/household_survey.xml', token)).body;
    expect(xml).toContain('<translation default="true()" lang="English (en)">');
    expect(xml).toContain('<translation lang="French (fr)">');
    expect(xml).toContain('<instance id="toilet">');
    expect(xml).toMatch(/<item>\s*<itextId>toilet-1<\/itextId>\s*<name>pit<\/name>\s*<\/item>/);
    expect(xml).toMatch(/<text id="toilet-1">\s*<value>Latrine<\/value>/);
    expect(xml).toContain(`<label ref="jr:itext('/data/respondent/age:label')"/>`);
    expect(xml).toContain('<bind nodeset="/data/intro" readonly="true()" type="string"/>');
    expect(xml).toContain('<repeat nodeset="/data/livestock/animal/vaccination">');

    sim.publishForm({ xmlFormId: 'plain', fields: [{ name: 'kind', type: 'select_one', label: 'Kind', choices: ['a', 'b'], choiceLabels: { a: 'Alpha' } }] });
    const plain = (await get<string>('/v1/projects/1/forms/plain.xml', token)).body;
    expect(plain).not.toContain('<itext>');
    expect(plain).toMatch(/<item>\s*<label>Alpha<\/label>\s*<name>a<\/name>/);
    expect(plain).toContain('<label>Kind</label>');
    sim.publishForm({ xmlFormId: 'hand', choiceStyle: 'inline', fields: [{ name: 'kind', type: 'select_multiple', choices: ['a'], choiceLabels: { a: 'Alpha' } }] });
    expect((await get<string>('/v1/projects/1/forms/hand.xml', token)).body).toMatch(/<select ref="\/data\/kind">\s*<item>\s*<label>Alpha<\/label>\s*<value>a<\/value>/);
  });

  it('publishes new versions: newest first in /versions, each with its own fields and XForm; submissions carry theirs', async () => {
    await start({ submissions: 1 });
    const token = await login();
    const v2 = sim.publishVersion('household_survey', (fields) => {
      fields.splice(1, 0, { name: 'consent', type: 'select_one', choices: ['yes', 'no'], label: { 'English (en)': 'Consent?', 'French (fr)': 'Consentement ?' } });
      fields.find((f) => f.name === 'household_size')!.type = 'string';
    });
    expect(v2).toBe('2026.1.1');
    const id = sim.createSubmission('household_survey');
    expect((sim.row('household_survey', id)!.__system as { formVersion: string }).formVersion).toBe(v2);
    const versions = (await get<{ version: string; publishedAt: string }[]>('/v1/projects/1/forms/household_survey/versions', token)).body;
    expect(versions.map((v) => v.version)).toEqual([v2, '2026.1']);
    const fieldsOf = async (v: string) => (await get<Field[]>(`/v1/projects/1/forms/household_survey/versions/${v}/fields?odata=true`, token)).body;
    expect((await fieldsOf('2026.1')).find((f) => f.name === 'household_size')!.type).toBe('int');
    expect((await fieldsOf('2026.1')).some((f) => f.name === 'consent')).toBe(false);
    expect((await fieldsOf(v2)).find((f) => f.name === 'household_size')!.type).toBe('string');
    expect((await get<string>(`/v1/projects/1/forms/household_survey/versions/${v2}.xml`, token)).body).toContain('version="2026.1.1"');
    expect((await get<string>('/v1/projects/1/forms/household_survey/versions/2026.1.xml', token)).body).not.toContain('/data/consent');
    expect((await get<OdkProblem>('/v1/projects/1/forms/household_survey/versions/9.9/fields', token)).body.code).toBe(404.1);
    expect((await get<OdkProblem>('/v1/projects/1/forms/nope/fields', token)).body.code).toBe(404.1);
  });

  it('generates rows consistent with the form: nested repeats with __id, notes null, file names for images', async () => {
    await start({ submissions: 40 });
    const rows = sim.submissionIds('household_survey').map((id) => sim.row('household_survey', id)!);
    type Animal = { __id: string; species: string | null; vaccination?: { __id: string; vaccinated_on: string | null }[] };
    const animals = rows.flatMap((r) => ((r.livestock as { animal?: Animal[] }).animal ?? []));
    const shots = animals.flatMap((a) => a.vaccination ?? []);
    expect(animals.length).toBeGreaterThan(0);
    expect(shots.length).toBeGreaterThan(0);
    for (const x of [...animals, ...shots]) expect(x.__id).toMatch(/^[0-9a-f]{40}$/);
    for (const r of rows) {
      expect(r.intro).toBeNull();
      if (r.dwelling_photo !== null) expect(r.dwelling_photo).toMatch(/\.jpg$/);
    }
  });
});

describe('ODK simulator: forms, faults, determinism', () => {
  it('lists forms; a form published at runtime appears, a draft has no feed', async () => {
    await start();
    const token = await login();
    const names = async () => (await get<{ xmlFormId: string; publishedAt: string | null }[]>('/v1/projects/1/forms', token)).body.map((f) => [f.xmlFormId, f.publishedAt !== null]);
    expect(await names()).toEqual([['household_survey', true]]);
    sim.publishForm({ xmlFormId: 'water_points', fields: [{ name: 'flow', type: 'decimal' }] }, { draft: true });
    expect(await names()).toEqual([['household_survey', true], ['water_points', false]]);
    expect((await get<OdkProblem>('/v1/projects/1/forms/water_points.svc/Submissions', token)).body.code).toBe(404.1);
    sim.publishForm({ xmlFormId: 'water_points', fields: [{ name: 'flow', type: 'decimal' }] });
    sim.createSubmission('water_points', { answers: { flow: 2.5 } });
    const rows = (await get<ODataPage>('/v1/projects/1/forms/water_points.svc/Submissions', token)).body.value;
    expect(rows).toHaveLength(1);
    expect(rows[0]!.flow).toBe(2.5);
  });

  it('serves injected faults in order, with Retry-After, and logs every request', async () => {
    await start({ submissions: 1 });
    const token = await login();
    sim.clearRequests();
    sim.failNext({ status: 429, retryAfterS: 2, path: '/Submissions' }, { status: 503 });
    const a = await fetch(`${sim.url}${SVC}/Submissions`, { headers: { authorization: `Bearer ${token}` } });
    expect(a.status).toBe(429);
    expect(a.headers.get('retry-after')).toBe('2');
    expect(((await a.json()) as { code: number }).code).toBe(429);
    expect((await get(`${SVC}/Submissions`, token)).status).toBe(503);
    expect((await get(`${SVC}/Submissions`, token)).status).toBe(200);
    expect(sim.requests.map((r) => [r.method, r.status, r.auth])).toEqual([
      ['GET', 429, 'bearer'],
      ['GET', 503, 'bearer'],
      ['GET', 200, 'bearer'],
    ]);
    expect(sim.requests[0]!.path).toBe(`${SVC}/Submissions`);
  });

  it('generates the same data from the same seed, with 0, 1 and many repeat entries', async () => {
    await start({ submissions: 16, seed: 7, now: () => Date.parse('2026-01-01T00:00:00Z') });
    const a = sim.submissionIds('household_survey').map((id) => sim.row('household_survey', id));
    await sim.close();
    await start({ submissions: 16, seed: 7, now: () => Date.parse('2026-01-01T00:00:00Z') });
    const b = sim.submissionIds('household_survey').map((id) => sim.row('household_survey', id));
    expect(b).toEqual(a);
    const sizes = new Set(a.map((r) => ((r!.member ?? []) as unknown[]).length));
    expect(sizes.has(0) && sizes.has(1) && [...sizes].some((n) => n > 1)).toBe(true);
    expect(HOUSEHOLD_FORM.fields.some((f) => f.type === 'select_multiple')).toBe(true);
    expect(decodeSkiptoken('01' + Buffer.from('{"instanceId":"x"}').toString('base64'))).toEqual({ instanceId: 'x' });
  });
});
