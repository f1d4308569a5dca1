import { XMLParser } from 'fast-xml-parser';
import { z } from 'zod';
import { FormDefinition, type Choice, type FieldType, type FormField, type Labels } from '@fieldsync/model';
import { OdkError, type OdkClient } from './odk.client.ts';

/*
 * Form definitions from ODK Central: `/fields?odata=true` gives structure and
 * bind types with the paths the OData rows use; only the XForm has labels and
 * choices (Central has no choices API) and tells a select_one, a note or a
 * calculate apart from a plain string.
 */

const FieldList = z.array(
  z.looseObject({
    path: z.string().min(2),
    name: z.string().min(1),
    type: z.string(),
    binary: z.boolean().nullish(),
    selectMultiple: z.boolean().nullish(),
  }),
);
export type OdkFieldList = z.infer<typeof FieldList>;

const Versions = z.array(z.looseObject({ version: z.string(), name: z.string().nullish(), publishedAt: z.string().nullish() }));

/** Bind types (as `/fields` reports them) onto the normalised types; string is refined from the XForm. */
const TYPES: Record<string, FieldType> = {
  int: 'integer', integer: 'integer', decimal: 'decimal',
  date: 'date', time: 'time', dateTime: 'datetime',
  geopoint: 'geopoint', geotrace: 'geotrace', geoshape: 'geoshape',
  binary: 'binary', boolean: 'boolean',
  'odk:rank': 'select_multiple', rank: 'select_multiple',
  structure: 'group', repeat: 'repeat',
};

/** lib/util/util.js sanitizeOdataIdentifier: how `/fields?odata=true` and the OData rows spell names. */
export const sanitizeOdataIdentifier = (name: string) => name.replace(/^([^a-z_])/i, '_$1').replace(/([^a-z0-9_]+)/gi, '_');

const ARRAYS = new Set(['translation', 'text', 'value', 'instance', 'item', 'bind', 'label', 'input', 'select1', 'select', 'upload', 'trigger', 'range', 'rank', 'group', 'repeat', 'itemset']);
const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  removeNSPrefix: true,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  ignoreDeclaration: true,
  isArray: (name) => ARRAYS.has(name),
});

type Node = Record<string, unknown>;
const arr = (v: unknown): Node[] => (Array.isArray(v) ? (v as Node[]) : v === undefined ? [] : [v as Node]);
const attr = (n: Node, a: string): string | undefined => (typeof n[`@_${a}`] === 'string' ? (n[`@_${a}`] as string) : undefined);
/** Text of an element, mixed content (`<output value=…/>`) flattened to its text parts. */
const text = (n: unknown): string => {
  if (Array.isArray(n)) return text(n[0]);
  if (typeof n === 'string') return n;
  if (typeof n === 'number') return String(n);
  if (n && typeof n === 'object') {
    const t = (n as Node)['#text'];
    return typeof t === 'string' ? t : typeof t === 'number' ? String(t) : '';
  }
  return '';
};

interface Control {
  tag: string;
  labels: Labels;
  /** The choice list (secondary instance id, or a synthetic one for inline items). */
  list?: string;
}

export interface XFormInfo {
  title?: string;
  languages: string[];
  /** By path relative to the instance root, sanitised like `/fields?odata=true` (`/group/q`). */
  controls: Map<string, Control>;
  binds: Map<string, { readonly: boolean; calculate: boolean; preload: boolean }>;
  choices: Choice[];
}

/** Labels, choice lists and binds from an XForm (pyxform ≥ 4 or hand-written). */
export function parseXForm(xml: string): XFormInfo {
  // `<output value="…"/>` inside a label is a dynamic part: keep the words around it apart.
  const doc = parser.parse(xml.replace(/\s*<output\b[^>]*\/>\s*/g, ' ')) as Node;
  const html = (doc.html ?? {}) as Node;
  const head = (html.head ?? {}) as Node;
  const model = (head.model ?? {}) as Node;
  const body = (html.body ?? {}) as Node;

  // itext: id → language → text (the plain form; long/short/image variants as fallback).
  const itext = new Map<string, Labels>();
  const languages: string[] = [];
  for (const tr of arr((model.itext as Node | undefined)?.translation)) {
    const lang = attr(tr, 'lang') ?? 'default';
    if (attr(tr, 'default')) languages.unshift(lang);
    else languages.push(lang);
    for (const t of arr(tr.text)) {
      const id = attr(t, 'id');
      if (!id) continue;
      const values = arr(t.value);
      const v = values.find((x) => typeof x === 'string' || !attr(x, 'form')) ?? values.find((x) => attr(x, 'form') === 'long') ?? values[0];
      const s = text(v);
      if (s) itext.set(id, { ...itext.get(id), [lang]: s });
    }
  }
  const langs = languages.length ? languages : ['default'];
  const labelOf = (labelNodes: unknown): Labels => {
    const l = arr(labelNodes)[0];
    if (l === undefined) return {};
    const ref = typeof l === 'object' ? attr(l, 'ref') : undefined;
    const m = ref && /jr:itext\(\s*'([^']+)'\s*\)/.exec(ref);
    if (m) return itext.get(m[1]!) ?? {};
    const s = text(l);
    return s ? Object.fromEntries(langs.map((lang) => [lang, s])) : {};
  };

  // The primary instance's root element name (`data`) prefixes every absolute ref.
  const instances = arr(model.instance);
  const primary = instances.find((i) => !attr(i, 'id'));
  const rootName = primary ? Object.keys(primary).find((k) => !k.startsWith('@_') && k !== '#text') : undefined;
  const rel = (ref: string, parent: string): string => {
    const abs = ref.startsWith('/') ? ref : `${parent}/${ref}`;
    const parts = abs.split('/').filter(Boolean);
    if (rootName && parts[0] === rootName) parts.shift();
    return `/${parts.map(sanitizeOdataIdentifier).join('/')}`;
  };

  const choices: Choice[] = [];
  // Secondary instances: pyxform's `<item><name/><label/></item>` or `<item><itextId/><name/></item>`.
  for (const inst of instances) {
    const id = attr(inst, 'id');
    if (!id) continue;
    const root = Object.entries(inst).find(([k]) => !k.startsWith('@_'))?.[1] as Node | undefined;
    for (const item of arr(root?.item)) {
      const name = text(item.name ?? item.value);
      if (!name) continue;
      const itextId = text(item.itextId);
      const labels = itextId ? (itext.get(itextId) ?? {}) : labelOf(item.label);
      choices.push({ list: id, name, labels });
    }
  }

  const controls = new Map<string, Control>();
  const walk = (n: Node, parent: string) => {
    for (const tag of ['input', 'select1', 'select', 'upload', 'trigger', 'range', 'rank', 'group', 'repeat']) {
      for (const c of arr(n[tag])) {
        const ref = attr(c, 'ref') ?? attr(c, 'nodeset');
        const path = ref ? rel(ref, parent) : parent;
        if (ref) {
          const labels = labelOf(c.label);
          const prev = controls.get(path);
          // pyxform labels a repeat on the group around it: keep that label for the repeat.
          const control: Control = { tag: tag === 'group' && prev?.tag === 'repeat' ? 'repeat' : tag, labels: Object.keys(labels).length ? labels : (prev?.labels ?? {}) };
          const itemset = arr(c.itemset)[0];
          const inst = itemset && /instance\(\s*'([^']+)'\s*\)/.exec(attr(itemset, 'nodeset') ?? '');
          if (inst) control.list = inst[1];
          else if (arr(c.item).length) {
            // Hand-written: inline `<item><label/><value/></item>`; the list is named after the path.
            control.list = path.slice(1);
            for (const item of arr(c.item)) choices.push({ list: control.list, name: text(item.value), labels: labelOf(item.label) });
          }
          if (!(tag === 'group' && prev)) controls.set(path, control);
          else if (!Object.keys(prev.labels).length) prev.labels = control.labels;
        }
        if (tag === 'group' || tag === 'repeat') walk(c, ref ? (ref.startsWith('/') ? ref : `${parent}/${ref}`) : parent);
      }
    }
  };
  walk(body, rootName ? `/${rootName}` : '');

  const binds = new Map<string, { readonly: boolean; calculate: boolean; preload: boolean }>();
  for (const b of arr(model.bind)) {
    const ref = attr(b, 'nodeset');
    if (!ref) continue;
    binds.set(rel(ref, rootName ? `/${rootName}` : ''), { readonly: /^true\(\)$/.test(attr(b, 'readonly') ?? ''), calculate: attr(b, 'calculate') !== undefined, preload: attr(b, 'preload') !== undefined });
  }
  const title = text(head.title) || undefined;
  return { title, languages: langs, controls, binds, choices };
}

/** The normalised definition from `/fields?odata=true` and the XForm of the same version. */
export function odkDefinition(fieldList: unknown, xml: string, meta: { sourceId: string; formId: string; version: string; title?: string }): FormDefinition {
  const fields = FieldList.parse(fieldList);
  const x = parseXForm(xml);
  const byPath = new Map<string, FormField>();
  const root: FormField[] = [];
  for (const f of fields) {
    const control = x.controls.get(f.path);
    const bind = x.binds.get(f.path);
    let type: FieldType = TYPES[f.type] ?? 'text';
    if (f.type === 'string') {
      if (f.selectMultiple || control?.tag === 'select') type = 'select_multiple';
      else if (control?.tag === 'select1') type = 'select_one';
      // A note: read-only, computed from nothing, shown as an input (or a trigger): no answer.
      else if (bind?.readonly && !bind.calculate && !bind.preload && control) type = 'note';
    } else if (f.selectMultiple) type = 'select_multiple';
    const field: FormField = { name: f.name, path: f.path.split('/').filter(Boolean), type, sourceType: f.type, labels: control?.labels ?? {} };
    if ((type === 'select_one' || type === 'select_multiple') && control?.list) field.choiceList = control.list;
    if (type === 'group' || type === 'repeat') field.children = [];
    byPath.set(f.path, field);
    const parent = byPath.get(f.path.slice(0, f.path.lastIndexOf('/')));
    (parent?.children ?? root).push(field);
  }
  return FormDefinition.parse({
    sourceId: meta.sourceId,
    formId: meta.formId,
    version: meta.version,
    title: meta.title || x.title || meta.formId,
    shape: 'odk',
    languages: x.languages,
    fields: root,
    choices: x.choices,
  });
}

/** Reads Central form definitions through the connector's client (sessions, timeouts, retries). */
export class OdkSchemaReader {
  constructor(
    private readonly client: OdkClient,
    private readonly projectId: number,
    private readonly sourceId: string,
  ) {}

  /**
   * Definitions of the published versions not in `known`, oldest first: the
   * version list, then `/fields` and the XForm of each unknown version (a blank
   * version is addressed as `___`).
   */
  async definitions(formId: string, opts: { known?: ReadonlySet<string>; signal?: AbortSignal } = {}): Promise<FormDefinition[]> {
    const base = `/v1/projects/${this.projectId}/forms/${encodeURIComponent(formId)}`;
    const parsed = Versions.safeParse(await this.client.get(this.client.url(`${base}/versions`), opts.signal));
    if (!parsed.success) throw new OdkError(`unexpected versions list from ODK Central for ${formId}: ${z.prettifyError(parsed.error)}`);
    const out: FormDefinition[] = [];
    for (const v of [...parsed.data].reverse()) {
      if (opts.known?.has(v.version)) continue;
      const at = `${base}/versions/${v.version === '' ? '___' : encodeURIComponent(v.version)}`;
      const fields = await this.client.get(this.client.url(`${at}/fields?odata=true`), opts.signal);
      const xml = await this.client.get(this.client.url(`${at}.xml`), opts.signal, 'text');
      try {
        out.push(odkDefinition(fields, String(xml), { sourceId: this.sourceId, formId, version: v.version, title: v.name ?? undefined }));
      } catch (e) {
        throw new OdkError(`cannot read the definition of ${formId} version "${v.version}": ${(e as Error).message}`, undefined, undefined, { cause: e });
      }
    }
    return out;
  }
}

/** The form version an ODK row was submitted against (`__system.formVersion`), if it says. */
export function odkFormVersion(data: Record<string, unknown>): string | undefined {
  const sys = data.__system;
  const v = sys && typeof sys === 'object' ? (sys as Record<string, unknown>).formVersion : undefined;
  return typeof v === 'string' ? v : undefined;
}
