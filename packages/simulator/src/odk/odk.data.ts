/**
 * Forms, stored submissions, seeded answers, and the OData row format of
 * ODK Central (getodk/central-backend lib/data/odata.js, v2026.2.2).
 */
import { createHash } from 'node:crypto';

export type OdkFieldType =
  | 'string' | 'int' | 'decimal' | 'date' | 'dateTime' | 'geopoint'
  | 'select_one' | 'select_multiple' | 'group' | 'repeat';

export interface OdkField {
  name: string;
  type: OdkFieldType;
  /** Fields of a group or repeat. */
  children?: OdkField[];
  /** Choice names of a select. */
  choices?: string[];
}

export interface OdkFormSpec {
  xmlFormId: string;
  name?: string;
  version?: string;
  /** Form fields in document order; a `meta` group with `instanceID` is appended when missing (Central requires one). */
  fields: OdkField[];
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

export const HOUSEHOLD_FORM: OdkFormSpec = {
  xmlFormId: 'household_survey',
  name: 'Household survey',
  version: '2026.1',
  fields: [
    { name: 'today', type: 'date' },
    {
      name: 'respondent',
      type: 'group',
      children: [
        { name: 'name', type: 'string' },
        { name: 'age', type: 'int' },
        { name: 'birth_date', type: 'date' },
      ],
    },
    { name: 'household_size', type: 'int' },
    { name: 'monthly_income', type: 'decimal' },
    { name: 'water_sources', type: 'select_multiple', choices: ['borehole', 'piped', 'river', 'rain', 'vendor'] },
    { name: 'toilet', type: 'select_one', choices: ['flush', 'pit', 'none'] },
    { name: 'location', type: 'geopoint' },
    {
      name: 'member',
      type: 'repeat',
      children: [
        { name: 'member_name', type: 'string' },
        { name: 'member_age', type: 'int' },
        { name: 'member_sex', type: 'select_one', choices: ['female', 'male'] },
      ],
    },
    { name: 'notes', type: 'string' },
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

export function generateAnswers(fields: OdkField[], rnd: Rng, index: number): OdkAnswers {
  const out: OdkAnswers = {};
  for (const f of fields) {
    if (f.name === 'meta' && f.type === 'group') continue; // set by the simulator
    const v = generateValue(f, rnd, index);
    if (v !== undefined) out[f.name] = v;
  }
  return out;
}

function generateValue(f: OdkField, rnd: Rng, index: number): unknown {
  // About one answer in ten is left empty, so rows show Central's `null`s.
  if (f.type !== 'group' && f.type !== 'repeat' && rnd() < 0.1) return null;
  switch (f.type) {
    case 'group':
      return generateAnswers(f.children ?? [], rnd, index);
    case 'repeat': {
      const n = REPEAT_SIZES[index % REPEAT_SIZES.length]!;
      return n === 0 ? undefined : Array.from({ length: n }, () => generateAnswers(f.children ?? [], rnd, index));
    }
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
  if (sel.id) row.__id = s.id;
  if (sel.system) {
    const all: Record<(typeof SYSTEM_PROPS)[number], unknown> = {
      submissionDate: iso(s.createdAt),
      updatedAt: iso(s.updatedAt),
      submitterId: String(s.submitterId),
      submitterName: s.submitterName,
      attachmentsPresent: 0,
      attachmentsExpected: 0,
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
