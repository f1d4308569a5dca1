/**
 * From form definitions (all known versions of one form) to the logical layout
 * of its typed tables: which tables (the form + one per repeat), which columns
 * (the union over versions), and per version how a record's answers map onto
 * them. Names are chosen later (naming.ts), against the persisted dictionary.
 */
import type { FieldType, FormDefinition, FormField, Labels } from '@fieldsync/model';
import type { Storage } from './coerce.ts';
import { slug } from './ident.ts';

export interface TableSpec {
  /** The repeat's full path joined by `/`; `` for the form's own table. */
  id: string;
  parentId: string | null;
  /** Name segment for a child table (the repeat's own name, slugged). */
  segment: string;
  label: string;
}

export interface ColumnSpec {
  /** Identity within the form: path, part and storage. A new storage for the same path is a new column. */
  ident: string;
  tableId: string;
  path: string;
  /** `` for the answer itself; `latitude` … for geopoints, `stored`/`url` for attachments, `choice:<name>` per choice. */
  part: string;
  storage: Storage;
  fieldType: FieldType;
  label: string;
  /** The name it gets when nothing else has it. */
  preferred: string;
}

export type LeafKind = 'plain' | 'geopoint' | 'binary' | 'multi';

export interface Leaf {
  kind: LeafKind;
  /** Full path (Kobo keys) and the path relative to the enclosing repeat entry (ODK nesting). */
  path: string[];
  rel: string[];
  /** `path` joined by `/`: the Kobo record key, computed once. */
  key: string;
  /** Column idents, in the order the kind fills them (binary: name, stored location, Kobo URL). */
  cols: string[];
  storage: Storage;
  choices?: string[];
}

export interface NodeSpec {
  tableId: string;
  leaves: Leaf[];
  repeats: { path: string[]; rel: string[]; key: string; name: string; node: NodeSpec }[];
}

export interface VersionSpec {
  version: string;
  shape: FormDefinition['shape'];
  root: NodeSpec;
}

export interface LogicalPlan {
  tables: TableSpec[];
  columns: ColumnSpec[];
  versions: Map<string, VersionSpec>;
  /** The definition used for records whose version is unknown (the newest). */
  latest: VersionSpec;
  /** Type changes found: path and the storages it has had. */
  conflicts: { path: string; storages: Storage[] }[];
  choices: { list: string; name: string; language: string; label: string }[];
  title: string;
}

export const STORAGE_OF: Partial<Record<FieldType, Storage>> = {
  integer: 'bigint', decimal: 'numeric', text: 'text', select_one: 'text', select_multiple: 'text',
  date: 'date', time: 'time', datetime: 'timestamp', timestamp_local: 'timestamp_local', boolean: 'boolean',
  geotrace: 'text', geoshape: 'text', binary: 'text',
};

export const GEO_PARTS = ['latitude', 'longitude', 'altitude', 'accuracy'] as const;

export function labelOf(labels: Labels, languages: string[]): string {
  for (const l of [...languages, 'default']) if (labels[l]) return labels[l]!;
  return Object.values(labels).find((v) => v) ?? '';
}

export interface PlanOptions {
  /** One boolean column per choice of each select_multiple. */
  choiceColumns?: boolean;
}

/** `defs` oldest first: earlier versions keep the plain names when a type changes. */
export function logicalPlan(defs: FormDefinition[], opts: PlanOptions = {}): LogicalPlan {
  if (defs.length === 0) throw new Error('logicalPlan needs at least one definition');
  const tables = new Map<string, TableSpec>();
  const columns = new Map<string, ColumnSpec>();
  const storagesByPath = new Map<string, Storage[]>();
  const versions = new Map<string, VersionSpec>();
  const choices = new Map<string, { list: string; name: string; language: string; label: string }>();

  const addColumn = (c: Omit<ColumnSpec, 'ident' | 'preferred'>, base: string): string => {
    const ident = `${c.path}#${c.part}#${c.storage}`;
    const key = `${c.path}#${c.part}`;
    const seen = storagesByPath.get(key) ?? [];
    if (!seen.includes(c.storage)) seen.push(c.storage);
    storagesByPath.set(key, seen);
    const existing = columns.get(ident);
    if (existing) {
      if (c.label) existing.label = c.label; // the newest label wins
      return ident;
    }
    // A second storage for the same answer: a new column, suffixed with its type.
    const preferred = seen[0] === c.storage ? base : `${base}__${c.storage}`;
    columns.set(ident, { ...c, ident, preferred });
    return ident;
  };

  for (const def of defs) {
    const lang = def.languages;
    const choiceNames = new Map<string, string[]>();
    for (const ch of def.choices) {
      choiceNames.set(ch.list, [...(choiceNames.get(ch.list) ?? []), ch.name]);
      const langs = Object.keys(ch.labels);
      for (const language of langs.length ? langs : ['default']) {
        choices.set(`${ch.list}\0${ch.name}\0${language}`, { list: ch.list, name: ch.name, language, label: ch.labels[language] ?? '' });
      }
    }

    const walk = (fields: FormField[], node: NodeSpec, repeatPath: string[]) => {
      for (const f of fields) {
        const rel = f.path.slice(repeatPath.length);
        if (f.type === 'group') {
          walk(f.children ?? [], node, repeatPath);
          continue;
        }
        if (f.type === 'repeat') {
          const id = f.path.join('/');
          if (!tables.has(id)) tables.set(id, { id, parentId: node.tableId, segment: slug(f.name), label: labelOf(f.labels, lang) });
          const child: NodeSpec = { tableId: id, leaves: [], repeats: [] };
          node.repeats.push({ path: f.path, rel, key: id, name: f.name, node: child });
          walk(f.children ?? [], child, f.path);
          continue;
        }
        const storage = f.type === 'geopoint' ? 'numeric' : STORAGE_OF[f.type];
        if (!storage) continue; // notes store nothing
        const path = f.path.join('/');
        const base = rel.map(slug).join('__');
        const label = labelOf(f.labels, lang);
        const common = { tableId: node.tableId, path, fieldType: f.type, label };
        if (f.type === 'geopoint') {
          // Plain JSON sources (Socrata points) carry no altitude or accuracy: latitude and longitude only.
          const cols = (def.shape === 'flat' ? GEO_PARTS.slice(0, 2) : GEO_PARTS).map((p) => addColumn({ ...common, part: p, storage: 'numeric' }, `${base}_${p}`));
          node.leaves.push({ kind: 'geopoint', path: f.path, rel, key: path, cols, storage: 'numeric' });
        } else if (f.type === 'binary') {
          const cols = [addColumn({ ...common, part: '', storage }, base)];
          // Where the attachment worker stored the file (Attachment.location), next to its name.
          cols.push(addColumn({ ...common, part: 'stored', storage: 'text', label: `${label} (stored)` }, `${base}_stored`));
          // Kobo records list each file's download URL; ODK records do not.
          if (def.shape === 'kobo') cols.push(addColumn({ ...common, part: 'url', storage: 'text', label: `${label} (URL)` }, `${base}_url`));
          node.leaves.push({ kind: 'binary', path: f.path, rel, key: path, cols, storage });
        } else if (f.type === 'select_multiple' && opts.choiceColumns && f.choiceList) {
          const names = choiceNames.get(f.choiceList) ?? [];
          const cols = [addColumn({ ...common, part: '', storage }, base)];
          for (const n of names) cols.push(addColumn({ ...common, part: `choice:${n}`, storage: 'boolean', label: `${label}: ${n}` }, `${base}_${slug(n)}`));
          node.leaves.push({ kind: 'multi', path: f.path, rel, key: path, cols, storage, choices: names });
        } else {
          node.leaves.push({ kind: 'plain', path: f.path, rel, key: path, cols: [addColumn({ ...common, part: '', storage }, base)], storage });
        }
      }
    };
    if (!tables.has('')) tables.set('', { id: '', parentId: null, segment: '', label: def.title });
    const root: NodeSpec = { tableId: '', leaves: [], repeats: [] };
    walk(def.fields, root, []);
    versions.set(def.version, { version: def.version, shape: def.shape, root });
  }
  const last = defs[defs.length - 1]!;
  return {
    tables: [...tables.values()],
    columns: [...columns.values()],
    versions,
    latest: versions.get(last.version)!,
    conflicts: [...storagesByPath].filter(([, s]) => s.length > 1).map(([k, s]) => ({ path: k.slice(0, k.lastIndexOf('#')), storages: s })),
    choices: [...choices.values()],
    title: last.title,
  };
}
