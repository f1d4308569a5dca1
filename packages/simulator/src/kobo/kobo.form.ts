import { createHash } from 'node:crypto';
import type { Rng } from './kobo.random.ts';

/*
 * The survey every simulated asset deploys (until a test deploys a changed
 * version): a household form with a note, a group, a repeat inside it, a
 * repeat nested in that one, selects, numbers, a date, a dateTime, a
 * geopoint, a photo and a calculate, labelled in two languages, so the
 * records and the content have every awkward shape the real server produces.
 */

export type KoboQuestionType =
  | 'start' | 'end' | 'today' | 'text' | 'integer' | 'decimal' | 'date' | 'datetime' | 'time'
  | 'geopoint' | 'image' | 'select_one' | 'select_multiple' | 'note' | 'calculate' | 'acknowledge' | 'barcode';

/** The form's translations, in the order `label` lists follow. */
export const KOBO_TRANSLATIONS = ['English (en)', 'Swahili (sw)'] as const;

/** A label per translation (aligned with {@link KOBO_TRANSLATIONS}); `null` where a translation is missing. */
export type KoboLabel = (string | null)[];

export interface KoboQuestion {
  kind: 'question';
  type: KoboQuestionType;
  name: string;
  label?: KoboLabel;
  required?: boolean;
  /** select_one / select_multiple: the choice list. */
  list?: string;
  /** calculate: the XLSForm expression (content only). */
  calculation?: string;
  /**
   * The answer as Kobo stores it (always a string), or undefined when left
   * unanswered. `scope`: answers given so far at this level, keyed by full path.
   */
  answer: (r: Rng, ctx: AnswerContext, scope: Record<string, unknown>) => string | undefined;
}

export interface KoboSection {
  kind: 'group' | 'repeat';
  name: string;
  label: KoboLabel;
  children: KoboNode[];
}

export type KoboNode = KoboQuestion | KoboSection;

export interface AnswerContext {
  /** When the form was opened on the device. */
  started: Date;
  /** Record number, for file names. */
  seq: number;
  /**
   * Share of records whose top-level repeats have entries (1–4). Absent: 0–4 entries
   * at random (about 80 % have some), the stream every seeded fixture was built from.
   */
  repeatShare?: number;
}

/** Choice lists: name and a label per translation. */
export type KoboChoices = Record<string, [string, KoboLabel][]>;

export const KOBO_CHOICES: KoboChoices = {
  yes_no: [['yes', ['Yes', 'Ndiyo']], ['no', ['No', 'Hapana']]],
  sex: [['female', ['Female', 'Mwanamke']], ['male', ['Male', 'Mwanamume']]],
  crops: [['maize', ['Maize', 'Mahindi']], ['beans', ['Beans', 'Maharagwe']], ['sorghum', ['Sorghum', 'Mtama']], ['cassava', ['Cassava', 'Muhogo']], ['groundnut', ['Groundnut', null]]],
  illness: [['malaria', ['Malaria', 'Malaria']], ['cough', ['Cough', 'Kikohozi']], ['diarrhoea', ['Diarrhoea', 'Kuhara']]],
};

const NAMES = ['Amina', 'Baraka', 'Chausiku', 'Daudi', 'Eshe', 'Faraji', 'Gasira', 'Hamisi', 'Imani', 'Juma', 'Kesi', 'Lulu', 'Mosi', 'Nia', 'Omari', 'Pendo'];

/** Device-local time with an offset, as Collect/Enketo write `start`/`end` (East Africa, +03:00). */
function deviceTime(d: Date): string {
  const local = new Date(d.getTime() + 3 * 3600_000).toISOString().replace('Z', '');
  return `${local}+03:00`;
}

/** A question node (for tests that deploy a changed form). */
export const koboQuestion = (type: KoboQuestionType, name: string, answer: KoboQuestion['answer'], extra: Partial<KoboQuestion> = {}): KoboQuestion => ({ kind: 'question', type, name, answer, ...extra });
const q = koboQuestion;

export const SURVEY: KoboNode[] = [
  q('start', 'start', (_r, c) => deviceTime(c.started)),
  q('end', 'end', (r, c) => deviceTime(new Date(c.started.getTime() + r.int(180, 1500) * 1000))),
  q('today', 'today', (_r, c) => c.started.toISOString().slice(0, 10)),
  q('note', 'intro', () => undefined, { label: ['Introduce yourself and ask for consent.', 'Jitambulishe na uombe ridhaa.'] }),
  {
    kind: 'group',
    name: 'household',
    label: ['Household', 'Kaya'],
    children: [
      q('text', 'respondent_name', (r) => r.pick(NAMES), { label: ['Respondent name', 'Jina la mhojiwa'], required: true }),
      q('integer', 'respondent_age', (r) => String(r.int(18, 85)), { label: ['Age of respondent', 'Umri wa mhojiwa'], required: true }),
      q('select_one', 'consent', (r) => (r.chance(0.9) ? 'yes' : 'no'), { label: ['Consent given?', 'Ridhaa imetolewa?'], list: 'yes_no', required: true }),
      {
        kind: 'repeat',
        name: 'members',
        label: ['Household members', 'Wanakaya'],
        children: [
          q('text', 'member_name', (r) => r.pick(NAMES), { label: ['Name', 'Jina'] }),
          q('integer', 'member_age', (r) => String(r.int(0, 90)), { label: ['Age', 'Umri'] }),
          q('select_one', 'member_sex', (r) => (r.chance(0.95) ? r.pick(['female', 'male']) : undefined), { label: ['Sex', 'Jinsia'], list: 'sex' }),
          {
            kind: 'repeat',
            name: 'illnesses',
            label: ['Illnesses this year', 'Magonjwa mwaka huu'],
            children: [
              q('select_one', 'illness', (r) => r.pick(['malaria', 'cough', 'diarrhoea']), { label: ['Illness', 'Ugonjwa'], list: 'illness' }),
              q('integer', 'days_sick', (r) => String(r.int(1, 14)), { label: ['Days sick', null] }),
            ],
          },
        ],
      },
      q('calculate', 'member_count', (_r, _c, scope) => String((scope['household/members'] as unknown[] | undefined)?.length ?? 0), { calculation: 'count(${members})' }),
    ],
  },
  q('select_multiple', 'crops_grown', (r) => {
    const picked = KOBO_CHOICES.crops!.map(([n]) => n).filter(() => r.chance(0.4));
    return picked.length ? picked.join(' ') : undefined;
  }, { label: ['Crops grown', 'Mazao yanayolimwa'], list: 'crops' }),
  q('decimal', 'monthly_income', (r) => (r.chance(0.85) ? (r.int(50_000, 4_000_000) / 100).toFixed(r.chance(0.5) ? 2 : 1) : undefined), { label: ['Monthly income (KES)', 'Mapato ya mwezi (KES)'] }),
  q('date', 'visit_date', (_r, c) => c.started.toISOString().slice(0, 10), { label: ['Visit date', 'Tarehe ya ziara'], required: true }),
  q('datetime', 'arrival_time', (r, c) => (r.chance(0.9) ? deviceTime(new Date(c.started.getTime() - r.int(60, 1800) * 1000)) : undefined), { label: ['Arrival time', 'Muda wa kuwasili'] }),
  q('geopoint', 'location', (r) =>
    r.chance(0.9) ? `${(-4 + r.next() * 8).toFixed(6)} ${(33 + r.next() * 8).toFixed(6)} ${(r.int(0, 25000) / 10).toFixed(1)} ${(r.int(30, 500) / 10).toFixed(1)}` : undefined,
  { label: ['GPS location', 'Mahali (GPS)'] }),
  q('image', 'photo', (r, c) => (r.chance(0.6) ? `dwelling-${c.seq}_${r.int(10, 59)}_${r.int(10, 59)}.jpg` : undefined), { label: ['Photo of the dwelling', 'Picha ya nyumba'] }),
  q('text', 'comments', (r) => (r.chance(0.2) ? r.pick(['Roof leaking', 'Respondent busy, short visit', 'Follow up next month']) : undefined), { label: ['Comments', null] }),
];

/** A deep copy of a form (functions shared), for deploying a changed version. */
export function cloneSurvey(nodes: KoboNode[]): KoboNode[] {
  return nodes.map((n) => (n.kind === 'question' ? { ...n, ...(n.label ? { label: [...n.label] } : {}) } : { ...n, label: [...n.label], children: cloneSurvey(n.children) }));
}

/** The node at a `/`-separated path (`household/members/member_age`), or undefined. */
export function findKoboNode(nodes: KoboNode[], path: string): KoboNode | undefined {
  const [head, ...rest] = path.split('/');
  const n = nodes.find((x) => x.name === head);
  if (!n || rest.length === 0) return n;
  return n.kind === 'question' ? undefined : findKoboNode(n.children, rest.join('/'));
}

/**
 * Answers of one filled-in form, keyed by full path (`household/respondent_age`).
 * A repeat is an array of entries whose keys are full paths too (nested
 * repeats nest); zero entries leave the key absent, like unanswered questions.
 */
export function fillSurvey(r: Rng, ctx: AnswerContext, nodes: KoboNode[] = SURVEY, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const n of nodes) {
    const path = prefix + n.name;
    if (n.kind === 'question') {
      const a = n.answer(r, ctx, out);
      if (a !== undefined) out[path] = a;
    } else if (n.kind === 'group') {
      Object.assign(out, fillSurvey(r, ctx, n.children, `${path}/`));
    } else {
      // Nested repeats are smaller, so records stay small.
      const nested = prefix.split('/').length > 2;
      const length = !nested && ctx.repeatShare !== undefined ? (r.chance(ctx.repeatShare) ? r.int(1, 4) : 0) : r.int(0, nested ? 2 : 4);
      const entries = Array.from({ length }, () => fillSurvey(r, ctx, n.children, `${path}/`));
      if (entries.length) out[path] = entries;
    }
  }
  return out;
}

/** Stable across versions, like kpi's `$kuid` (a row keeps it when the form is edited). */
const kuid = (xpath: string) => createHash('sha1').update(xpath).digest('base64url').slice(0, 9);

/** `content.survey` rows as kpi serves them: groups and repeats as begin/end rows, `$xpath` for every named row. */
export function surveyRows(nodes: KoboNode[] = SURVEY, prefix = ''): Record<string, unknown>[] {
  const rows: Record<string, unknown>[] = [];
  for (const n of nodes) {
    const xpath = prefix + n.name;
    const base = { name: n.name, $kuid: kuid(xpath), $xpath: xpath, $autoname: n.name };
    if (n.kind === 'question') {
      rows.push({
        type: n.type,
        ...base,
        ...(n.label ? { label: n.label } : {}),
        ...(n.required !== undefined ? { required: n.required } : {}),
        ...(n.list ? { select_from_list_name: n.list } : {}),
        ...(n.calculation ? { calculation: n.calculation } : {}),
      });
    } else {
      rows.push({ type: `begin_${n.kind}`, ...base, label: n.label });
      rows.push(...surveyRows(n.children, `${xpath}/`));
      rows.push({ type: `end_${n.kind}`, $kuid: `/${base.$kuid}` });
    }
  }
  return rows;
}

export function choiceRows(choices: KoboChoices = KOBO_CHOICES): Record<string, unknown>[] {
  return Object.entries(choices).flatMap(([list_name, items]) =>
    items.map(([name, label]) => ({ list_name, name, $autovalue: name, label, $kuid: kuid(`${list_name}-${name}`) })),
  );
}

/** A version's raw `content`, as `/versions/{uid}/` serves it. */
export function surveyContent(nodes: KoboNode[], choices: KoboChoices = KOBO_CHOICES): KoboContent {
  return {
    schema: '1',
    survey: surveyRows(nodes),
    choices: choiceRows(choices),
    settings: { default_language: KOBO_TRANSLATIONS[0] },
    translated: ['label'],
    translations: [...KOBO_TRANSLATIONS],
  };
}

export interface KoboContent {
  schema: string;
  survey: Record<string, unknown>[];
  choices: Record<string, unknown>[];
  settings: Record<string, unknown>;
  translated: string[];
  translations: (string | null)[];
}

/** Paths outside repeats that hold media file names (for `_attachments`). */
export function mediaPaths(nodes: KoboNode[], prefix = ''): string[] {
  return nodes.flatMap((n) =>
    n.kind === 'group' ? mediaPaths(n.children, `${prefix}${n.name}/`) : n.kind === 'question' && n.type === 'image' ? [`${prefix}${n.name}`] : [],
  );
}

/** Answers an edit changes by default: a corrected age and a comment. */
export function defaultEdit(r: Rng, current: Record<string, unknown>): Record<string, string> {
  const age = Number(current['household/respondent_age'] ?? 40);
  return { 'household/respondent_age': String(age >= 85 ? age - 1 : age + 1), comments: r.pick(['Corrected age after call-back', 'Age re-checked with ID card']) };
}
