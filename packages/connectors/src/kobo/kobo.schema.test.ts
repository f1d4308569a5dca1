import { afterEach, describe, expect, it } from 'vitest';
import { KoboSource } from '@fieldsync/config';
import { FormDefinition, type FormField } from '@fieldsync/model';
import { findKoboNode, koboQuestion, startKoboSimulator, type KoboQuestion, type KoboSimulator } from '@fieldsync/simulator';
import { AuthError } from '../connector.ts';
import { KoboConnector } from './kobo.connector.ts';
import { koboDefinition } from './kobo.schema.ts';

let sim: KoboSimulator | undefined;
afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

async function setup(token?: string, embeddedVersions?: number) {
  sim = await startKoboSimulator({ startTime: new Date('2026-06-01T08:00:00Z'), assets: [{ name: 'Household survey 2026' }], submissions: 3, embeddedVersions });
  const uid = sim.assetUids[0]!;
  const config = KoboSource.parse({
    kind: 'kobo', id: 'kobo-test', baseUrl: sim.url, token: token ?? sim.token, forms: [uid],
    http: { timeoutMs: 5000, retries: 2, backoffMs: 10, maxBackoffMs: 200 },
  });
  return { sim, uid, kobo: new KoboConnector(config, {}) };
}

/** Every field, depth first, by its path joined with `/`. */
function flatten(fields: FormField[], out = new Map<string, FormField>()): Map<string, FormField> {
  for (const f of fields) {
    out.set(f.path.join('/'), f);
    if (f.children) flatten(f.children, out);
  }
  return out;
}

describe('Kobo form definitions', () => {
  it('normalises the demo form: groups, a repeat in a group, a nested repeat, types, two languages, choices', async () => {
    const { uid, kobo } = await setup();
    const [def, ...more] = await kobo.formDefinitions(uid);
    expect(more).toHaveLength(0);
    expect(FormDefinition.parse(def)).toEqual(def);
    const version = sim!.records(uid)[0]!.__version__;
    expect(def).toMatchObject({ sourceId: 'kobo-test', formId: uid, version, title: 'Household survey 2026', shape: 'kobo', languages: ['English (en)', 'Swahili (sw)'] });

    const household = def!.fields.find((f) => f.name === 'household')!;
    expect(household).toMatchObject({ type: 'group', path: ['household'], labels: { 'English (en)': 'Household', 'Swahili (sw)': 'Kaya' } });
    const members = household.children!.find((f) => f.name === 'members')!;
    expect(members).toMatchObject({ type: 'repeat', path: ['household', 'members'] });
    const illnesses = members.children!.find((f) => f.name === 'illnesses')!;
    expect(illnesses).toMatchObject({ type: 'repeat', path: ['household', 'members', 'illnesses'] });
    expect(illnesses.children!.map((f) => f.name)).toEqual(['illness', 'days_sick']);

    const all = flatten(def!.fields);
    const types = Object.fromEntries([...all].map(([p, f]) => [p, f.type]));
    expect(types).toMatchObject({
      start: 'datetime', end: 'datetime', today: 'date', intro: 'note',
      'household/respondent_name': 'text', 'household/respondent_age': 'integer', 'household/consent': 'select_one',
      'household/members/member_age': 'integer', 'household/members/illnesses/days_sick': 'integer', 'household/member_count': 'text',
      crops_grown: 'select_multiple', monthly_income: 'decimal', visit_date: 'date', arrival_time: 'datetime',
      location: 'geopoint', photo: 'binary', comments: 'text',
    });
    expect(all.get('household/member_count')!.sourceType).toBe('calculate');
    expect(all.get('crops_grown')).toMatchObject({ choiceList: 'crops', sourceType: 'select_multiple' });
    // A missing translation is left out, not an empty string.
    expect(all.get('household/members/illnesses/days_sick')!.labels).toEqual({ 'English (en)': 'Days sick' });
    expect(def!.choices).toContainEqual({ list: 'crops', name: 'maize', labels: { 'English (en)': 'Maize', 'Swahili (sw)': 'Mahindi' } });
    expect(def!.choices).toContainEqual({ list: 'crops', name: 'groundnut', labels: { 'English (en)': 'Groundnut' } });
    expect(def!.choices.filter((c) => c.list === 'illness').map((c) => c.name)).toEqual(['malaria', 'cough', 'diarrhoea']);

    // Every answer key of every record is a field path (repeat entries included).
    const keys = new Set<string>();
    const collect = (o: Record<string, unknown>) => {
      for (const [k, v] of Object.entries(o)) {
        if (k.startsWith('_') || k.startsWith('meta/') || k.startsWith('formhub/')) continue;
        keys.add(k);
        if (Array.isArray(v)) for (const e of v) collect(e as Record<string, unknown>);
      }
    };
    for (const r of sim!.records(uid)) collect(r);
    for (const k of keys) expect(all.has(k), k).toBe(true);
  });

  it('returns only versions not yet known, oldest first, each with its own content', async () => {
    const { uid, kobo } = await setup();
    const [v1] = await kobo.formDefinitions(uid);
    const v2 = sim!.deployVersion(uid, (survey) => {
      survey.push(koboQuestion('integer', 'household_size', () => '5', { label: ['Household size', null] }));
    });
    const v3 = sim!.deployVersion(uid, (survey) => {
      const age = findKoboNode(survey, 'household/respondent_age') as KoboQuestion;
      age.type = 'text';
    });
    sim!.clearRequests();
    const fresh = await kobo.formDefinitions(uid, { known: new Set([v1!.version]) });
    expect(fresh.map((d) => d.version)).toEqual([v2, v3]);
    // One request for the asset, one per unknown version; the saved drafts are never read.
    expect(sim!.requests.map((r) => r.path)).toEqual([`/api/v2/assets/${uid}/`, `/api/v2/assets/${uid}/versions/${v2}/`, `/api/v2/assets/${uid}/versions/${v3}/`]);
    const field = (d: FormDefinition, path: string) => flatten(d.fields).get(path);
    expect(field(v1!, 'household_size')).toBeUndefined();
    expect(field(fresh[0]!, 'household_size')).toMatchObject({ type: 'integer', labels: { 'English (en)': 'Household size' } });
    expect(field(fresh[0]!, 'household/respondent_age')!.type).toBe('integer');
    expect(field(fresh[1]!, 'household/respondent_age')!.type).toBe('text');
    expect(await kobo.formDefinitions(uid, { known: new Set([v1!.version, v2, v3]) })).toEqual([]);
    expect(kobo.formVersionOf({ data: sim!.createSubmissions(uid, 1)[0]! } as never)).toBe(v3);
  });

  it('pages /versions/?deployed=true when the asset embeds only the newest deployed versions', async () => {
    const { uid, kobo } = await setup(undefined, 2);
    const first = sim!.records(uid)[0]!.__version__ as string;
    const later = [1, 2, 3, 4].map((i) => sim!.deployVersion(uid, (s) => void s.push(koboQuestion('text', `q${i}`, () => 'x'))));
    const defs = await kobo.formDefinitions(uid, { known: new Set([later[1]!]) });
    expect(defs.map((d) => d.version)).toEqual([first, later[0], later[2], later[3]]);
    expect(sim!.requests.some((r) => r.path.endsWith('/versions/') && r.query.deployed === 'true')).toBe(true);
  });

  it('reads older content: "select_one list" types, plain-string labels, no $autoname/$xpath, no translations', () => {
    const def = koboDefinition(
      {
        survey: [
          { type: 'begin group', name: 'g', label: 'Group' },
          { type: 'select_one yes_no', name: 'ok', label: 'OK?' },
          { type: 'begin repeat', name: 'r' },
          { type: 'dateTime', name: 'when' },
          { type: 'gps', name: 'where' },
          { type: 'photo', name: 'pic' },
          { type: 'range', name: 'score' },
          { type: 'acknowledge', name: 'ack' },
          { type: 'end repeat' },
          { type: 'end group' },
          { type: 'barcode', name: 'code' },
          { type: 'select_multiple_from_file', name: 'ff', select_from_list_name: 'things.csv' },
          { type: 'xml-external', name: 'ext' },
        ],
        choices: [{ list_name: 'yes_no', name: 'yes', label: 'Yes' }],
      },
      { sourceId: 's', formId: 'f', version: 'v', title: 't' },
    );
    expect(def.languages).toEqual(['default']);
    const all = flatten(def.fields);
    expect([...all].map(([p, f]) => [p, f.type])).toEqual([
      ['g', 'group'], ['g/ok', 'select_one'], ['g/r', 'repeat'], ['g/r/when', 'datetime'], ['g/r/where', 'geopoint'], ['g/r/pic', 'binary'],
      ['g/r/score', 'decimal'], ['g/r/ack', 'text'], ['code', 'text'], ['ff', 'select_multiple'], ['ext', 'text'],
    ]);
    expect(all.get('g/ok')).toMatchObject({ choiceList: 'yes_no', labels: { default: 'OK?' }, sourceType: 'select_one' });
    expect(def.choices).toEqual([{ list: 'yes_no', name: 'yes', labels: { default: 'Yes' } }]);
  });

  it('refuses a bad token with an AuthError', async () => {
    const { uid, kobo } = await setup('wrong-token');
    await expect(kobo.formDefinitions(uid)).rejects.toBeInstanceOf(AuthError);
  });
});
