/**
 * Forms, stored submissions, seeded answers, and the OData row format of
 * ODK Central (getodk/central-backend lib/data/odata.js, v2026.2.2).
 */
import { createHash } from 'node:crypto';

/**
 * Question types as an XLSForm author picks them; the XForm bind type (what
 * `/fields` reports) follows: select_one/note/calculate → `string`, image → `binary`.
 */
export type OdkFieldType =
  | 'string' | 'int' | 'decimal' | 'date' | 'time' | 'dateTime' | 'boolean' | 'geopoint'
  | 'select_one' | 'select_multiple' | 'note' | 'calculate' | 'image' | 'group' | 'repeat';

/** A label: plain, or by language (the form's `languages`) when the form has translations. */
export type OdkLabel = string | Record<string, string>;

export interface OdkField {
  name: string;
  type: OdkFieldType;
  /** Fields of a group or repeat. */
  children?: OdkField[];
  /** Choice names of a select. */
  choices?: string[];
  /** The question's label (XForm only). */
  label?: OdkLabel;
  /** select: the choice list's name (the secondary instance id); default the field's name. */
  list?: string;
  /** select: labels by choice name; a choice without one is labelled with its name. */
  choiceLabels?: Record<string, OdkLabel>;
  /** calculate: the expression written into the bind. */
  calculation?: string;
}

export interface OdkFormSpec {
  xmlFormId: string;
  name?: string;
  version?: string;
  /** Form fields in document order; a `meta` group with `instanceID` is appended when missing (Central requires one). */
  fields: OdkField[];
  /** Translations (itext languages); the first is the default. Absent: plain labels. */
  languages?: string[];
  /**
   * How the XForm carries choices: `pyxform` (default) = a secondary instance per
   * list, as pyxform ≥ 4 writes; `inline` = `<item><label/><value/></item>` under
   * the select, as hand-written forms do.
   */
  choiceStyle?: 'pyxform' | 'inline';
}

export type OdkReviewState = 'hasIssues' | 'edited' | 'rejected' | 'approved';

/** Answers nested like the OData row: groups as objects, repeats as arrays of objects. */
export type OdkAnswers = Record<string, unknown>;

/** One submission as the simulator stores it (Central's submissions + current submission_def). */
export interface SimSubmission {
  /** Central's serial id: the tie-break of the default order and of the skiptoken keyset. */
  seq: number;
  /** `__id`: the first version's instanceID, never changes. */
  id: string;
  /** `meta.instanceID`: the current version. */
  instanceId: string;
  answers: OdkAnswers;
  createdAt: number;
  updatedAt: number | null;
  deletedAt: number | null;
  reviewState: OdkReviewState | null;
  edits: number;
  submitterId: number;
  submitterName: string;
  deviceId: string | null;
  /** Version of the form the first version was submitted against. */
  formVersion: string;
}

const EN = 'English (en)';
const FR = 'French (fr)';
const l = (en: string, fr: string): OdkLabel => ({ [EN]: en, [FR]: fr });

/**
 * The demo form: every construct the analyst tables handle — a note, a group, a
 * top-level repeat, a repeat inside a group with a repeat nested in it, selects,
 * numbers, date/dateTime, a geopoint, an image, a calculate — in two languages.
 */
export const HOUSEHOLD_FORM: OdkFormSpec = {
  xmlFormId: 'household_survey',
  name: 'Household survey',
  version: '2026.1',
  languages: [EN, FR],
  fields: [
    { name: 'today', type: 'date', label: l('Today', "Aujourd'hui") },
    { name: 'intro', type: 'note', label: l('Introduce yourself and ask for consent.', 'Présentez-vous et demandez le consentement.') },
    {
      name: 'respondent',
      type: 'group',
      label: l('Respondent', 'Répondant'),
      children: [
        { name: 'name', type: 'string', label: l('Name', 'Nom') },
        { name: 'age', type: 'int', label: l('Age', 'Âge') },
        { name: 'birth_date', type: 'date', label: l('Date of birth', 'Date de naissance') },
      ],
    },
    { name: 'household_size', type: 'int', label: l('Household size', 'Taille du ménage') },
    { name: 'monthly_income', type: 'decimal', label: l('Monthly income', 'Revenu mensuel') },
    {
      name: 'water_sources', type: 'select_multiple', label: l('Water sources', "Sources d'eau"), list: 'water_sources',
      choices: ['borehole', 'piped', 'river', 'rain', 'vendor'],
      choiceLabels: { borehole: l('Borehole', 'Forage'), piped: l('Piped water', 'Eau courante'), river: l('River', 'Rivière'), rain: l('Rain water', 'Eau de pluie'), vendor: l('Vendor', 'Vendeur') },
    },
    {
      name: 'toilet', type: 'select_one', label: l('Toilet', 'Toilettes'), list: 'toilet', choices: ['flush', 'pit', 'none'],
      choiceLabels: { flush: l('Flush toilet', 'Chasse d’eau'), pit: l('Pit latrine', 'Latrine'), none: l('None', 'Aucune') },
    },
    { name: 'location', type: 'geopoint', label: l('Location', 'Emplacement') },
    { name: 'visit_time', type: 'dateTime', label: l('Time of visit', 'Heure de la visite') },
    { name: 'dwelling_photo', type: 'image', label: l('Photo of the dwelling', 'Photo du logement') },
    {
      name: 'member',
      type: 'repeat',
      label: l('Household member', 'Membre du ménage'),
      children: [
        { name: 'member_name', type: 'string', label: l('Name', 'Nom') },
        { name: 'member_age', type: 'int', label: l('Age', 'Âge') },
        { name: 'member_sex', type: 'select_one', label: l('Sex', 'Sexe'), list: 'sex', choices: ['female', 'male'], choiceLabels: { female: l('Female', 'Femme'), male: l('Male', 'Homme') } },
      ],
    },
    {
      name: 'livestock',
      type: 'group',
      label: l('Livestock', 'Bétail'),
      children: [
        {
          name: 'animal',
          type: 'repeat',
          label: l('Animal kind', "Type d'animal"),
          children: [
            { name: 'species', type: 'select_one', label: l('Species', 'Espèce'), list: 'species', choices: ['cattle', 'goat', 'chicken'], choiceLabels: { cattle: l('Cattle', 'Bovins'), goat: l('Goats', 'Chèvres'), chicken: l('Chickens', 'Poulets') } },
            { name: 'herd_size', type: 'int', label: l('How many?', 'Combien ?') },
            {
              name: 'vaccination',
              type: 'repeat',
              label: l('Vaccination', 'Vaccination'),
              children: [
                { name: 'vaccine', type: 'string', label: l('Vaccine', 'Vaccin') },
                { name: 'vaccinated_on', type: 'date', label: l('Date', 'Date') },
              ],
            },
          ],
        },
      ],
    },
    { name: 'income_band', type: 'calculate', calculation: "if( /data/monthly_income  > 20000, 'high', 'low')" },
    { name: 'notes', type: 'string', label: l('Notes', 'Remarques') },
    { name: 'meta', type: 'group', children: [{ name: 'instanceID', type: 'string' }] },
  ],
};

/** Central refuses forms without a meta group; give every simulated form one. */
export function withMeta(fields: OdkField[]): OdkField[] {
  return fields.some((f) => f.name === 'meta' && f.type === 'group')
    ? fields
    : [...fields, { name: 'meta', type: 'group', children: [{ name: 'instanceID', type: 'string' }] }];
}

// ---------------------------------------------------------------------------
// Seeded randomness: the same seed and the same calls give the same data.

export type Rng = () => number;

export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function uuidFrom(rnd: Rng): string {
  const hex = Array.from({ length: 4 }, () => Math.floor(rnd() * 2 ** 32).toString(16).padStart(8, '0')).join('');
  const v = `${hex.slice(0, 12)}4${hex.slice(13, 16)}${'89ab'[Math.floor(rnd() * 4)]}${hex.slice(17)}`;
  return `uuid:${v.slice(0, 8)}-${v.slice(8, 12)}-${v.slice(12, 16)}-${v.slice(16, 20)}-${v.slice(20, 32)}`;
}

const NAMES = ['Amina Diallo', 'Kwame Mensah', 'Lucía Fernández', 'Nguyen Thi Lan', 'Fatima Zahra', 'Joseph Otieno', 'Priya Nair', 'Tomás Silva', "Aïcha N'Diaye", 'Mariam Bello'];
const WORDS = ['roof damaged', 'no answer at first visit', 'recent arrival', 'shared compound', 'goat herder', 'needs follow-up'];
const pick = <T>(rnd: Rng, xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
const int = (rnd: Rng, lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1));

/** Repeat sizes cycle through 0, 1 and many so every seeded batch has each case. */
const REPEAT_SIZES = [0, 1, 3, 0, 2, 5, 1, 4];

export function generateAnswers(fields: OdkField[], rnd: Rng, index: number, depth = 0): OdkAnswers {
  const out: OdkAnswers = {};
  for (const f of fields) {
    if (f.name === 'meta' && f.type === 'group') continue; // set by the simulator
    const v = generateValue(f, rnd, index, depth);
    if (v !== undefined) out[f.name] = v;
  }
  return out;
}

function generateValue(f: OdkField, rnd: Rng, index: number, depth: number): unknown {
  if (f.type === 'note') return null; // a note holds no value
  // About one answer in ten is left empty, so rows show Central's `null`s.
  if (f.type !== 'group' && f.type !== 'repeat' && rnd() < 0.1) return null;
  switch (f.type) {
    case 'group':
      return generateAnswers(f.children ?? [], rnd, index, depth);
    case 'repeat': {
      // Nested repeats stay small (0–2 entries) so rows do not balloon.
      const n = depth === 0 ? REPEAT_SIZES[index % REPEAT_SIZES.length]! : Math.floor(rnd() * 3);
      return n === 0 ? undefined : Array.from({ length: n }, () => generateAnswers(f.children ?? [], rnd, index, depth + 1));
    }
    case 'calculate':
      return pick(rnd, ['high', 'low']);
    case 'image':
      return `${f.name}-${index + 1}_${int(rnd, 10, 59)}.jpg`;
    case 'boolean':
      return rnd() < 0.5 ? 'true' : 'false'; // OData keeps booleans as strings
    case 'time':
      return `${String(int(rnd, 6, 19)).padStart(2, '0')}:${String(int(rnd, 0, 59)).padStart(2, '0')}:00.000+03:00`;
    case 'string':
      return /name/i.test(f.name) ? pick(rnd, NAMES) : pick(rnd, WORDS);
    case 'int':
      return /age/i.test(f.name) ? int(rnd, 1, 95) : int(rnd, 1, 12);
    case 'decimal':
      return Math.round(rnd() * 5_000_000) / 100;
    case 'date':
      return `${int(rnd, 1935, 2025)}-${String(int(rnd, 1, 12)).padStart(2, '0')}-${String(int(rnd, 1, 28)).padStart(2, '0')}`;
    case 'dateTime':
      return new Date(Date.UTC(2026, int(rnd, 0, 10), int(rnd, 1, 28), int(rnd, 0, 23), int(rnd, 0, 59))).toISOString().replace('Z', '+00:00');
    case 'select_one':
      return pick(rnd, f.choices ?? ['a', 'b']);
    case 'select_multiple': {
      const cs = (f.choices ?? ['a', 'b']).filter(() => rnd() < 0.45);
      return cs.length ? cs.join(' ') : (f.choices ?? ['a'])[0];
    }
    case 'geopoint':
      // XForms geopoints are "lat lon alt acc"; Central turns them into GeoJSON.
      return `${(rnd() * 20 - 5).toFixed(6)} ${(rnd() * 40 - 10).toFixed(6)} ${int(rnd, 0, 2400)} ${(rnd() * 20 + 3).toFixed(1)}`;
  }
}

// ---------------------------------------------------------------------------
// OData serialization (what the Submissions feed sends).

/** Which parts of a row `$select` asked for; null members mean "everything". */
export interface Selection {
  /** Selected form fields (with the groups around them and the children of selected groups). */
  fields: Set<OdkField> | null;
  id: boolean;
  /** `__system` properties to include, or null for none. */
  system: Set<string> | 'all' | null;
}

export const SELECT_ALL: Selection = { fields: null, id: true, system: 'all' };

export const SYSTEM_PROPS = [
  'submissionDate', 'updatedAt', 'submitterId', 'submitterName', 'attachmentsPresent', 'attachmentsExpected',
  'status', 'reviewState', 'deviceId', 'edits', 'formVersion', 'deletedAt',
] as const;

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
const sha1 = (s: string) => createHash('sha1').update(s).digest('hex');

/** GeoJSON like Central: [lon, lat, alt?], accuracy in properties; `$wkt=true` gives WKT. */
export function geopoint(v: unknown, wkt: boolean): unknown {
  if (v === null || v === undefined) return null;
  if (typeof v === 'object') return v; // already GeoJSON
  const [lat, lon, alt, acc] = String(v).trim().split(/\s+/).map(Number.parseFloat);
  if (lat === undefined || lon === undefined || Number.isNaN(lat) || Number.isNaN(lon)) return null;
  const coordinates = [lon, lat];
  if (alt !== undefined && !Number.isNaN(alt)) coordinates.push(alt);
  if (wkt) return `POINT (${coordinates.join(' ')})`;
  return acc !== undefined && !Number.isNaN(acc) ? { type: 'Point', coordinates, properties: { accuracy: acc } } : { type: 'Point', coordinates };
}

function primitive(f: OdkField, v: unknown, wkt: boolean): unknown {
  if (v === null || v === undefined || v === '') return null;
  switch (f.type) {
    case 'int':
      return typeof v === 'number' ? Math.trunc(v) : Number.parseInt(String(v), 10);
    case 'decimal':
      return typeof v === 'number' ? v : Number.parseFloat(String(v));
    case 'geopoint':
      return geopoint(v, wkt);
    case 'select_multiple':
      return Array.isArray(v) ? v.join(' ') : String(v);
    default:
      return String(v);
  }
}

const asObject = (v: unknown): OdkAnswers => (v && typeof v === 'object' && !Array.isArray(v) ? (v as OdkAnswers) : {});

/**
 * Central first builds a frame of every non-repeat field set to null (gh#206: missing
 * values are `null`, key present), then adds `__id` and `__system`, then walks the XML
 * and adds each repeat (navigation link first, then the array if `$expand=*`) to its
 * parent object as it meets it. So top-level repeats come after `__system`, and a repeat
 * with zero entries leaves no key at all.
 */
function frame(fields: OdkField[], answers: OdkAnswers, sel: Selection, wkt: boolean): OdkAnswers {
  const o: OdkAnswers = {};
  for (const f of fields) {
    if (f.type === 'repeat' || (sel.fields && !sel.fields.has(f))) continue;
    o[f.name] = f.type === 'group' ? frame(f.children ?? [], asObject(answers[f.name]), sel, wkt) : primitive(f, answers[f.name], wkt);
  }
  return o;
}

interface RepeatContext {
  /** Central's hash parts so far: `Submissions#<id>`, `group#`, `rep#<i>`. */
  hashParts: string[];
  /** Navigation link so far: `Submissions('<id>')`, `group`, `rep('<hash>')`. */
  linkParts: string[];
}

function addRepeats(fields: OdkField[], answers: OdkAnswers, target: OdkAnswers, ctx: RepeatContext, sel: Selection, expand: boolean, wkt: boolean): void {
  for (const f of fields) {
    if (sel.fields && !sel.fields.has(f)) continue;
    if (f.type === 'group') {
      const inner = target[f.name];
      if (inner && typeof inner === 'object')
        addRepeats(f.children ?? [], asObject(answers[f.name]), inner as OdkAnswers, { ...ctx, hashParts: [...ctx.hashParts, `${f.name}#`], linkParts: [...ctx.linkParts, f.name] }, sel, expand, wkt);
    } else if (f.type === 'repeat') {
      const entries = Array.isArray(answers[f.name]) ? (answers[f.name] as unknown[]) : [];
      if (entries.length === 0) continue;
      target[`${f.name}@odata.navigationLink`] = [...ctx.linkParts, f.name].join('/');
      if (!expand) continue;
      target[f.name] = entries.map((e, i) => {
        const hashParts = [...ctx.hashParts, `${f.name}#${i}`];
        const hash = sha1(hashParts.join('%%'));
        const bag = frame(f.children ?? [], asObject(e), SELECT_ALL, wkt);
        bag.__id = hash;
        addRepeats(f.children ?? [], asObject(e), bag, { hashParts, linkParts: [...ctx.linkParts, `${f.name}('${hash}')`] }, SELECT_ALL, expand, wkt);
        return bag;
      });
    }
  }
}

export interface RowOptions {
  expand?: boolean;
  select?: Selection;
  wkt?: boolean;
}

/** One submission as a row of the `Submissions` entity set. */
export function toODataRow(fields: OdkField[], s: SimSubmission, o: RowOptions = {}): OdkAnswers {
  const sel = o.select ?? SELECT_ALL;
  const wkt = o.wkt ?? false;
  const answers = { ...s.answers, meta: { ...asObject(s.answers.meta), instanceID: s.instanceId } };
  const row = frame(fields, answers, sel, wkt);
  const files = countFiles(fields, answers);
  if (sel.id) row.__id = s.id;
  if (sel.system) {
    const all: Record<(typeof SYSTEM_PROPS)[number], unknown> = {
      submissionDate: iso(s.createdAt),
      updatedAt: iso(s.updatedAt),
      submitterId: String(s.submitterId),
      submitterName: s.submitterName,
      attachmentsPresent: files,
      attachmentsExpected: files,
      status: null,
      reviewState: s.reviewState,
      deviceId: s.deviceId,
      edits: s.edits,
      formVersion: s.formVersion,
      deletedAt: iso(s.deletedAt),
    };
    const system = sel.system;
    row.__system = system === 'all' ? all : Object.fromEntries(SYSTEM_PROPS.filter((p) => system.has(p)).map((p) => [p, all[p]]));
  }
  addRepeats(fields, answers, row, { hashParts: [`Submissions#${s.id}`], linkParts: [`Submissions('${encodeURIComponent(s.id)}')`] }, sel, o.expand ?? false, wkt);
  return row;
}

/** Answered image questions, repeats included (Central expects one attachment each; all uploaded here). */
function countFiles(fields: OdkField[], answers: OdkAnswers): number {
  let n = 0;
  for (const f of fields) {
    const v = answers[f.name];
    if (f.type === 'image' && typeof v === 'string' && v) n += 1;
    else if (f.type === 'group') n += countFiles(f.children ?? [], asObject(v));
    else if (f.type === 'repeat' && Array.isArray(v)) for (const e of v) n += countFiles(f.children ?? [], asObject(e));
  }
  return n;
}

/** All fields, depth first, with their slash paths. */
export function walkFields(fields: OdkField[], prefix = ''): { path: string; field: OdkField; parents: OdkField[] }[] {
  const out: { path: string; field: OdkField; parents: OdkField[] }[] = [];
  const visit = (fs: OdkField[], pre: string, parents: OdkField[]) => {
    for (const f of fs) {
      const path = `${pre}${f.name}`;
      out.push({ path, field: f, parents });
      if (f.children) visit(f.children, `${path}/`, [...parents, f]);
    }
  };
  visit(fields, prefix, []);
  return out;
}
