import type { Rng } from './kobo.random.ts';

/*
 * The one survey every simulated asset deploys: a household form with a group,
 * a repeat inside it, selects, numbers, a date, a geopoint and a photo, so the
 * records have every awkward shape the real server produces.
 */

type QuestionType = 'start' | 'end' | 'today' | 'text' | 'integer' | 'decimal' | 'date' | 'geopoint' | 'image' | 'select_one' | 'select_multiple';

interface Question {
  kind: 'question';
  type: QuestionType;
  name: string;
  label?: string;
  required?: boolean;
  list?: string;
  /** The answer as Kobo stores it (always a string), or undefined when left unanswered. */
  answer: (r: Rng, ctx: AnswerContext) => string | undefined;
}

interface Section {
  kind: 'group' | 'repeat';
  name: string;
  label: string;
  children: Node[];
}

type Node = Question | Section;

export interface AnswerContext {
  /** When the form was opened on the device. */
  started: Date;
  /** Record number, for file names. */
  seq: number;
}

const CHOICES: Record<string, [string, string][]> = {
  yes_no: [['yes', 'Yes'], ['no', 'No']],
  sex: [['female', 'Female'], ['male', 'Male']],
  crops: [['maize', 'Maize'], ['beans', 'Beans'], ['sorghum', 'Sorghum'], ['cassava', 'Cassava'], ['groundnut', 'Groundnut']],
};

const NAMES = ['Amina', 'Baraka', 'Chausiku', 'Daudi', 'Eshe', 'Faraji', 'Gasira', 'Hamisi', 'Imani', 'Juma', 'Kesi', 'Lulu', 'Mosi', 'Nia', 'Omari', 'Pendo'];

/** Device-local time with an offset, as Collect/Enketo write `start`/`end` (East Africa, +03:00). */
function deviceTime(d: Date): string {
  const local = new Date(d.getTime() + 3 * 3600_000).toISOString().replace('Z', '');
  return `${local}+03:00`;
}

const q = (type: QuestionType, name: string, answer: Question['answer'], extra: Partial<Question> = {}): Question => ({ kind: 'question', type, name, answer, ...extra });

export const SURVEY: Node[] = [
  q('start', 'start', (_r, c) => deviceTime(c.started)),
  q('end', 'end', (r, c) => deviceTime(new Date(c.started.getTime() + r.int(180, 1500) * 1000))),
  q('today', 'today', (_r, c) => c.started.toISOString().slice(0, 10)),
  {
    kind: 'group',
    name: 'household',
    label: 'Household',
    children: [
      q('text', 'respondent_name', (r) => r.pick(NAMES), { label: 'Respondent name', required: true }),
      q('integer', 'respondent_age', (r) => String(r.int(18, 85)), { label: 'Age of respondent', required: true }),
      q('select_one', 'consent', (r) => (r.chance(0.9) ? 'yes' : 'no'), { label: 'Consent given?', list: 'yes_no', required: true }),
      {
        kind: 'repeat',
        name: 'members',
        label: 'Household members',
        children: [
          q('text', 'member_name', (r) => r.pick(NAMES), { label: 'Name' }),
          q('integer', 'member_age', (r) => String(r.int(0, 90)), { label: 'Age' }),
          q('select_one', 'member_sex', (r) => (r.chance(0.95) ? r.pick(['female', 'male']) : undefined), { label: 'Sex', list: 'sex' }),
        ],
      },
    ],
  },
  q('select_multiple', 'crops_grown', (r) => {
    const picked = CHOICES.crops!.map(([n]) => n).filter(() => r.chance(0.4));
    return picked.length ? picked.join(' ') : undefined;
  }, { label: 'Crops grown', list: 'crops' }),
  q('decimal', 'monthly_income', (r) => (r.chance(0.85) ? (r.int(50_000, 4_000_000) / 100).toFixed(r.chance(0.5) ? 2 : 1) : undefined), { label: 'Monthly income (KES)' }),
  q('date', 'visit_date', (_r, c) => c.started.toISOString().slice(0, 10), { label: 'Visit date', required: true }),
  q('geopoint', 'location', (r) =>
    r.chance(0.9) ? `${(-4 + r.next() * 8).toFixed(6)} ${(33 + r.next() * 8).toFixed(6)} ${(r.int(0, 25000) / 10).toFixed(1)} ${(r.int(30, 500) / 10).toFixed(1)}` : undefined,
  { label: 'GPS location' }),
  q('image', 'photo', (r, c) => (r.chance(0.6) ? `dwelling-${c.seq}_${r.int(10, 59)}_${r.int(10, 59)}.jpg` : undefined), { label: 'Photo of the dwelling' }),
  q('text', 'comments', (r) => (r.chance(0.2) ? r.pick(['Roof leaking', 'Respondent busy, short visit', 'Follow up next month']) : undefined), { label: 'Comments' }),
];

/**
 * Answers of one filled-in form, keyed by full path (`household/respondent_age`).
 * A repeat is an array of entries whose keys are full paths too; zero entries
 * leave the key absent, like unanswered questions.
 */
export function fillSurvey(r: Rng, ctx: AnswerContext, nodes: Node[] = SURVEY, prefix = ''): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const n of nodes) {
    const path = prefix + n.name;
    if (n.kind === 'question') {
      const a = n.answer(r, ctx);
      if (a !== undefined) out[path] = a;
    } else if (n.kind === 'group') {
      Object.assign(out, fillSurvey(r, ctx, n.children, `${path}/`));
    } else {
      const entries = Array.from({ length: r.int(0, 4) }, () => fillSurvey(r, ctx, n.children, `${path}/`));
      if (entries.length) out[path] = entries;
    }
  }
  return out;
}

/** `content.survey` rows as kpi serves them: groups and repeats as begin/end rows, `$xpath` for every named row. */
export function surveyRows(r: Rng, nodes: Node[] = SURVEY, prefix = ''): Record<string, unknown>[] {
  const rows: Record<string, unknown>[] = [];
  for (const n of nodes) {
    const xpath = prefix + n.name;
    const base = { name: n.name, $kuid: r.uid('').slice(0, 8), $xpath: xpath, $autoname: n.name };
    if (n.kind === 'question') {
      rows.push({
        type: n.type,
        ...base,
        ...(n.label ? { label: [n.label] } : {}),
        ...(n.required !== undefined ? { required: n.required } : {}),
        ...(n.list ? { select_from_list_name: n.list } : {}),
      });
    } else {
      rows.push({ type: `begin_${n.kind}`, ...base, label: [n.label] });
      rows.push(...surveyRows(r, n.children, `${xpath}/`));
      rows.push({ type: `end_${n.kind}`, $kuid: `/${base.$kuid}` });
    }
  }
  return rows;
}

export function choiceRows(): Record<string, unknown>[] {
  return Object.entries(CHOICES).flatMap(([list_name, items]) =>
    items.map(([name, label]) => ({ list_name, name, $autovalue: name, label: [label], $kuid: `${list_name}-${name}` })),
  );
}

/** Paths that hold media file names (for `_attachments`). */
export const MEDIA_PATHS = ['photo'];

/** Answers an edit changes by default: a corrected age and a comment. */
export function defaultEdit(r: Rng, current: Record<string, unknown>): Record<string, string> {
  const age = Number(current['household/respondent_age'] ?? 40);
  return { 'household/respondent_age': String(age >= 85 ? age - 1 : age + 1), comments: r.pick(['Corrected age after call-back', 'Age re-checked with ID card']) };
}
