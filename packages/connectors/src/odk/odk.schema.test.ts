import { afterEach, describe, expect, it } from 'vitest';
import { OdkSource } from '@fieldsync/config';
import { FormDefinition, type FormField } from '@fieldsync/model';
import { startOdkSimulator, type OdkSimulator } from '@fieldsync/simulator';
import { OdkConnector } from './odk.connector.ts';
import { odkDefinition } from './odk.schema.ts';

const FORM = 'household_survey';
let sim: OdkSimulator;
afterEach(async () => {
  await sim?.close();
});

async function setup() {
  sim = await startOdkSimulator({ submissions: 5 });
  const config = OdkSource.parse({
    kind: 'odk', id: 'odk-test', baseUrl: sim.url, projectId: 1, forms: [FORM],
    auth: { session: { email: sim.email, password: sim.password } },
    http: { timeoutMs: 5000, retries: 2, backoffMs: 10, maxBackoffMs: 200 },
  });
  return new OdkConnector(config);
}

function flatten(fields: FormField[], out = new Map<string, FormField>()): Map<string, FormField> {
  for (const f of fields) {
    out.set(f.path.join('/'), f);
    if (f.children) flatten(f.children, out);
  }
  return out;
}

const EN = 'English (en)';
const FR = 'French (fr)';

describe('ODK form definitions', () => {
  it('normalises the demo form from /fields and the XForm: tree, types, itext labels in two languages, choice lists', async () => {
    const odk = await setup();
    const [def, ...more] = await odk.formDefinitions(FORM);
    expect(more).toHaveLength(0);
    expect(FormDefinition.parse(def)).toEqual(def);
    expect(def).toMatchObject({ sourceId: 'odk-test', formId: FORM, version: '2026.1', title: 'Household survey', shape: 'odk', languages: [EN, FR] });

    const livestock = def!.fields.find((f) => f.name === 'livestock')!;
    expect(livestock).toMatchObject({ type: 'group', sourceType: 'structure', labels: { [EN]: 'Livestock', [FR]: 'Bétail' } });
    const animal = livestock.children![0]!;
    expect(animal).toMatchObject({ name: 'animal', type: 'repeat', path: ['livestock', 'animal'], labels: { [EN]: 'Animal kind' } });
    const vaccination = animal.children!.find((f) => f.name === 'vaccination')!;
    expect(vaccination).toMatchObject({ type: 'repeat', path: ['livestock', 'animal', 'vaccination'] });
    expect(vaccination.children!.map((f) => [f.name, f.type])).toEqual([['vaccine', 'text'], ['vaccinated_on', 'date']]);

    const all = flatten(def!.fields);
    expect(Object.fromEntries([...all].map(([p, f]) => [p, f.type]))).toEqual({
      today: 'date', intro: 'note', respondent: 'group', 'respondent/name': 'text', 'respondent/age': 'integer', 'respondent/birth_date': 'date',
      household_size: 'integer', monthly_income: 'decimal', water_sources: 'select_multiple', toilet: 'select_one', location: 'geopoint',
      visit_time: 'datetime', dwelling_photo: 'binary', member: 'repeat', 'member/member_name': 'text', 'member/member_age': 'integer',
      'member/member_sex': 'select_one', livestock: 'group', 'livestock/animal': 'repeat', 'livestock/animal/species': 'select_one',
      'livestock/animal/herd_size': 'integer', 'livestock/animal/vaccination': 'repeat', 'livestock/animal/vaccination/vaccine': 'text',
      'livestock/animal/vaccination/vaccinated_on': 'date', income_band: 'text', notes: 'text', meta: 'group', 'meta/instanceID': 'text',
    });
    expect(all.get('toilet')).toMatchObject({ sourceType: 'string', choiceList: 'toilet', labels: { [EN]: 'Toilet', [FR]: 'Toilettes' } });
    expect(all.get('member/member_sex')!.choiceList).toBe('sex');
    expect(all.get('respondent/age')).toMatchObject({ sourceType: 'int', labels: { [EN]: 'Age', [FR]: 'Âge' } });
    expect(def!.choices).toContainEqual({ list: 'water_sources', name: 'piped', labels: { [EN]: 'Piped water', [FR]: 'Eau courante' } });
    expect(def!.choices.filter((c) => c.list === 'species').map((c) => c.name)).toEqual(['cattle', 'goat', 'chicken']);

    // Every key of every OData row is a field path (repeat entries included).
    const rows = sim.submissionIds(FORM).map((id) => sim.row(FORM, id)!);
    const keys = new Set<string>();
    const collect = (o: Record<string, unknown>, pre: string) => {
      for (const [k, v] of Object.entries(o)) {
        if (k.startsWith('__') || k.includes('@odata')) continue;
        keys.add(pre + k);
        if (Array.isArray(v)) for (const e of v) collect(e as Record<string, unknown>, `${pre}${k}/`);
        else if (v && typeof v === 'object' && !('type' in v)) collect(v as Record<string, unknown>, `${pre}${k}/`);
      }
    };
    for (const r of rows) collect(r, '');
    for (const k of keys) expect(all.has(k), k).toBe(true);
  });

  it('returns only unknown published versions, oldest first; a changed type and an added question show in the new one', async () => {
    const odk = await setup();
    const v2 = sim.publishVersion(FORM, (fields) => {
      fields.push({ name: 'roof', type: 'select_one', list: 'roof', choices: ['iron', 'thatch'], label: { [EN]: 'Roof', [FR]: 'Toit' }, choiceLabels: { iron: { [EN]: 'Iron sheets', [FR]: 'Tôle' } } });
      fields.find((f) => f.name === 'household_size')!.type = 'string';
    });
    const defs = await odk.formDefinitions(FORM);
    expect(defs.map((d) => d.version)).toEqual(['2026.1', v2]);
    const [old, next] = defs.map((d) => flatten(d.fields));
    expect(old!.get('household_size')!.type).toBe('integer');
    expect(next!.get('household_size')!.type).toBe('text');
    expect(old!.has('roof')).toBe(false);
    expect(next!.get('roof')).toMatchObject({ type: 'select_one', choiceList: 'roof' });
    // A choice without a label of its own is labelled with its name.
    expect(defs[1]!.choices.filter((c) => c.list === 'roof')).toEqual([
      { list: 'roof', name: 'iron', labels: { [EN]: 'Iron sheets', [FR]: 'Tôle' } },
      { list: 'roof', name: 'thatch', labels: { [EN]: 'thatch', [FR]: 'thatch' } },
    ]);
    sim.clearRequests();
    expect((await odk.formDefinitions(FORM, { known: new Set(['2026.1']) })).map((d) => d.version)).toEqual([v2]);
    expect(sim.requests.map((r) => r.path)).toEqual([`/v1/projects/1/forms/${FORM}/versions`, `/v1/projects/1/forms/${FORM}/versions/${v2}/fields`, `/v1/projects/1/forms/${FORM}/versions/${v2}.xml`]);
    const id = sim.createSubmission(FORM);
    expect(odk.formVersionOf({ data: sim.row(FORM, id)! } as never)).toBe(v2);
  });

  it('reads plain labels with secondary instances and hand-written inline items (no translations)', async () => {
    await setup();
    sim.publishForm({ xmlFormId: 'plain', name: 'Plain', fields: [{ name: 'kind', type: 'select_one', label: 'Kind', choices: ['a', 'b'], choiceLabels: { a: 'Alpha', b: 'Beta' } }, { name: 'n', type: 'note', label: 'Read me' }] });
    sim.publishForm({ xmlFormId: 'hand', choiceStyle: 'inline', fields: [{ name: 'tags', type: 'select_multiple', label: 'Tags', choices: ['x', 'y'], choiceLabels: { x: 'Ex', y: 'Why' } }] });
    const odk = new OdkConnector(OdkSource.parse({ kind: 'odk', id: 'odk-test', baseUrl: sim.url, projectId: 1, forms: ['plain', 'hand'], auth: { session: { email: sim.email, password: sim.password } } }));
    const [plain] = await odk.formDefinitions('plain');
    expect(plain!.languages).toEqual(['default']);
    expect(plain!.fields[0]).toMatchObject({ name: 'kind', type: 'select_one', choiceList: 'kind', labels: { default: 'Kind' } });
    expect(plain!.fields[1]).toMatchObject({ name: 'n', type: 'note', labels: { default: 'Read me' } });
    expect(plain!.choices).toEqual([{ list: 'kind', name: 'a', labels: { default: 'Alpha' } }, { list: 'kind', name: 'b', labels: { default: 'Beta' } }]);
    // A blank version is addressed as `___`.
    sim.publishForm({ xmlFormId: 'blank', version: '', fields: [{ name: 'x', type: 'int' }] });
    expect((await odk.formDefinitions('blank')).map((d) => [d.version, d.fields[0]!.type])).toEqual([['', 'integer']]);
    expect(sim.requests.some((r) => r.path === '/v1/projects/1/forms/blank/versions/___.xml')).toBe(true);
    const [hand] = await odk.formDefinitions('hand');
    expect(hand!.fields[0]).toMatchObject({ name: 'tags', type: 'select_multiple', choiceList: 'tags' });
    expect(hand!.choices).toEqual([{ list: 'tags', name: 'x', labels: { default: 'Ex' } }, { list: 'tags', name: 'y', labels: { default: 'Why' } }]);
  });

  it('keeps paths as the OData rows spell them, even where names sanitise alike', () => {
    const def = odkDefinition(
      [
        { path: '/g', name: 'g', type: 'structure', binary: null, selectMultiple: null },
        { path: '/g/__', name: '__', type: 'string', binary: null, selectMultiple: null },
        { path: '/g/_1st', name: '_1st', type: 'odk:rank', binary: null, selectMultiple: null },
        { path: '/g/ok', name: 'ok', type: 'boolean', binary: null, selectMultiple: null },
      ],
      `<?xml version="1.0"?><h:html xmlns:h="http://www.w3.org/1999/xhtml" xmlns="http://www.w3.org/2002/xforms"><h:head><h:title>T &amp; U</h:title><model><instance><x id="f"><g><__/><_1st/><ok/></g></x></instance></model></h:head>
       <h:body><group ref="/x/g"><input ref="__"><label>Storm <output value="/x/g/ok"/> here</label></input></group></h:body></h:html>`,
      { sourceId: 's', formId: 'f', version: '' },
    );
    expect(def.title).toBe('T & U');
    expect(def.version).toBe('');
    const all = flatten(def.fields);
    expect(all.get('g/__')).toMatchObject({ type: 'text', labels: { default: 'Storm here' } });
    expect(all.get('g/_1st')!.type).toBe('select_multiple');
    expect(all.get('g/ok')!.type).toBe('boolean');
  });
});
