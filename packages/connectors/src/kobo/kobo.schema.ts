import { HTTPError, type Got } from 'got';
import { z } from 'zod';
import { FormDefinition, type Choice, type FieldType, type FormField, type Labels } from '@fieldsync/model';
import { AuthError } from '../connector.ts';
import { jsonBody } from '../http.ts';

/*
 * Form definitions from kpi: the asset (`/api/v2/assets/{uid}/`: name,
 * deployed versions) and each deployed version's raw content
 * (`/versions/{uid}/`: survey, choices, translations). The asset's own
 * `content` is the draft, which may never have been deployed: never used.
 */

const Page = z.object({
  count: z.number().int().nonnegative(),
  next: z.string().nullable().optional(),
  results: z.array(z.looseObject({ uid: z.string().min(1) })),
});

const Asset = z.looseObject({
  uid: z.string(),
  name: z.string().nullable().optional(),
  deployed_versions: Page.optional(),
});

const Row = z.looseObject({
  type: z.string().optional(),
  name: z.string().optional(),
  $autoname: z.string().optional(),
  $xpath: z.string().optional(),
  label: z.unknown().optional(),
  select_from_list_name: z.string().optional(),
});

const Content = z.looseObject({
  survey: z.array(Row).default([]),
  choices: z.array(z.looseObject({ list_name: z.string().optional(), name: z.unknown().optional(), $autovalue: z.unknown().optional(), label: z.unknown().optional() })).default([]),
  translations: z.array(z.string().nullable()).optional(),
});
type Content = z.infer<typeof Content>;

const Version = z.looseObject({ uid: z.string(), content: Content });

/** kpi's question types (and the older spellings) onto the normalised ones; anything else is text. */
const TYPES: Record<string, FieldType> = {
  integer: 'integer', int: 'integer',
  decimal: 'decimal', range: 'decimal',
  select_one: 'select_one', select_one_from_file: 'select_one',
  // rank answers are space-separated choice names, like select_multiple's.
  select_multiple: 'select_multiple', select_multiple_from_file: 'select_multiple', rank: 'select_multiple',
  date: 'date', today: 'date',
  time: 'time',
  datetime: 'datetime', dateTime: 'datetime', start: 'datetime', end: 'datetime',
  geopoint: 'geopoint', gps: 'geopoint', 'start-geopoint': 'geopoint', 'background-geopoint': 'geopoint',
  geotrace: 'geotrace', geoshape: 'geoshape',
  image: 'binary', photo: 'binary', audio: 'binary', video: 'binary', file: 'binary', 'background-audio': 'binary', audit: 'binary',
  note: 'note',
  // acknowledge stores "OK" (or nothing): text keeps the answer as given.
};

/** Section rows: kobomatrix/rank/score groups are expanded at deploy, so their keys are only approximated by a group. */
const SECTION = /^(begin|end)[_ ](group|repeat|kobomatrix|rank|score)$/;

/** Languages of a content: `translations` with `null` (the unnamed one) as `default`. */
function languagesOf(c: Content): string[] {
  const t = c.translations;
  if (!t || t.length === 0) return ['default'];
  return t.map((x) => x ?? 'default');
}

/** A `label` list aligned with the translations (`null`: missing there); older content has a plain string. */
function labelsOf(label: unknown, languages: string[]): Labels {
  const out: Labels = {};
  if (typeof label === 'string') {
    if (label) out[languages[0] ?? 'default'] = label;
  } else if (Array.isArray(label)) {
    label.forEach((l, i) => {
      if (typeof l === 'string' && l !== '' && languages[i] !== undefined) out[languages[i]!] = l;
    });
  }
  return out;
}

/** The normalised definition of one deployed version's content. */
export function koboDefinition(content: unknown, meta: { sourceId: string; formId: string; version: string; title: string }): FormDefinition {
  const c = Content.parse(content);
  const languages = languagesOf(c);
  const root: FormField[] = [];
  const stack: { children: FormField[]; path: string[] }[] = [{ children: root, path: [] }];

  for (const row of c.survey) {
    if (!row.type) continue;
    // Older content writes `select_one yes_no`; newer splits it into select_from_list_name.
    const [rawType, ...rest] = row.type.trim().replace(/^(begin|end)\s+/, '$1_').split(/\s+/);
    const type = rawType!;
    const section = SECTION.exec(type);
    if (section?.[1] === 'end') {
      if (stack.length > 1) stack.pop();
      continue;
    }
    const name = row.$autoname ?? row.name;
    if (!name) continue;
    const top = stack.at(-1)!;
    const path = row.$xpath ? row.$xpath.split('/').filter(Boolean) : [...top.path, name];
    const field: FormField = { name, path, type: 'text', sourceType: type, labels: labelsOf(row.label, languages) };
    if (section) {
      field.type = section[2] === 'repeat' ? 'repeat' : 'group';
      field.children = [];
      top.children.push(field);
      stack.push({ children: field.children, path });
      continue;
    }
    field.type = TYPES[type] ?? 'text';
    const list = row.select_from_list_name ?? (rest.length ? rest.join(' ') : undefined);
    if ((field.type === 'select_one' || field.type === 'select_multiple') && list) field.choiceList = list;
    top.children.push(field);
  }

  const choices: Choice[] = [];
  for (const ch of c.choices) {
    const value = ch.$autovalue ?? ch.name;
    if (!ch.list_name || (typeof value !== 'string' && typeof value !== 'number')) continue;
    choices.push({ list: ch.list_name, name: String(value), labels: labelsOf(ch.label, languages) });
  }

  return FormDefinition.parse({ ...meta, shape: 'kobo', languages, fields: root, choices });
}

/** Reads kpi form definitions over the connector's HTTP client (timeouts, retries). */
export class KoboSchemaReader {
  constructor(
    private readonly http: Got,
    private readonly base: URL,
    private readonly sourceId: string,
  ) {}

  /**
   * Definitions of the deployed versions whose uid is not in `known`, oldest
   * first. One request for the asset, one more per page of versions beyond the
   * asset's first, one per unknown version.
   */
  async definitions(formId: string, opts: { known?: ReadonlySet<string>; signal?: AbortSignal } = {}): Promise<FormDefinition[]> {
    const assetPath = `api/v2/assets/${encodeURIComponent(formId)}/`;
    const asset = Asset.parse(await this.get(assetPath, {}, opts.signal));
    let deployed = asset.deployed_versions?.results.map((v) => v.uid) ?? [];
    if (!asset.deployed_versions || asset.deployed_versions.count > deployed.length) deployed = await this.deployedUids(formId, opts.signal);
    const title = asset.name || formId;
    const out: FormDefinition[] = [];
    // kpi lists newest first; the tables layer wants them in the order they were deployed.
    for (const uid of [...deployed].reverse()) {
      if (opts.known?.has(uid)) continue;
      const v = Version.parse(await this.get(`${assetPath}versions/${encodeURIComponent(uid)}/`, {}, opts.signal));
      try {
        out.push(koboDefinition(v.content, { sourceId: this.sourceId, formId, version: uid, title }));
      } catch (e) {
        throw new Error(`kobo ${this.sourceId}/${formId}: cannot read the content of version ${uid}: ${(e as Error).message}`, { cause: e });
      }
    }
    return out;
  }

  /** Every deployed version's uid, newest first, through `/versions/?deployed=true` (keeping only `next`'s query: its host may be wrong). */
  private async deployedUids(formId: string, signal?: AbortSignal): Promise<string[]> {
    const uids: string[] = [];
    let query: Record<string, string> = { deployed: 'true', limit: '100' };
    for (let i = 0; i < 1000; i++) {
      const page = Page.parse(await this.get(`api/v2/assets/${encodeURIComponent(formId)}/versions/`, query, signal));
      uids.push(...page.results.map((r) => r.uid));
      if (!page.next || page.results.length === 0) break;
      query = Object.fromEntries(new URL(page.next).searchParams);
    }
    return uids;
  }

  private async get(path: string, searchParams: Record<string, string>, signal?: AbortSignal): Promise<unknown> {
    const url = new URL(path, this.base);
    try {
      return jsonBody(await this.http.get(url, { searchParams, signal }));
    } catch (e) {
      if (e instanceof HTTPError) {
        const status = e.response.statusCode;
        const detail = String(e.response.body ?? '').slice(0, 300);
        if (status === 401 || status === 403) {
          throw new AuthError(status === 401 ? 'Kobo token refused' : `Kobo refused access to ${url.pathname}`, 'token (and the environment variable it is read from)', `${status}: ${detail}`, status);
        }
        throw new Error(`kobo ${this.sourceId}: HTTP ${status} from ${url.pathname}: ${detail}`, { cause: e });
      }
      throw e;
    }
  }
}

/** The form version a Kobo record was filled in with (`__version__`), if it says. */
export function koboFormVersion(data: Record<string, unknown>): string | undefined {
  const v = data.__version__;
  return typeof v === 'string' && v ? v : undefined;
}
