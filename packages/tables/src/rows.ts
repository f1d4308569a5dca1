/**
 * One stored submission → its typed rows (the form's row and one row per repeat
 * entry, at any depth). The only place records are read, shared by the
 * in-transaction writer and the rebuild, so the two always agree.
 */
import type { Dialect } from '@fieldsync/db';
import { BAD, coerce, point, type Out } from './coerce.ts';
import { hash8 } from './ident.ts';
import type { Leaf, NodeSpec, VersionSpec } from './plan.ts';
import { SYSTEM_CHILD, SYSTEM_PARENT, type Plan, type PhysTable } from './schema.ts';

export interface StoredRow {
  key: string;
  version: string;
  submittedAt: Date | string;
  updatedAt: Date | string;
  deleted: boolean | number;
  data: unknown;
}

export interface TypedRows {
  /** Per table id: rows of values, system columns first, then the table's columns in plan order. */
  rows: Map<string, unknown[][]>;
  /** Answers that did not fit their column (loaded as NULL). */
  unfit: number;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

// Own properties only: a question named `constructor` or `__proto__` must not read the prototype.
const hasOwn = Object.prototype.hasOwnProperty;
const own = (o: Obj, k: string): unknown => (hasOwn.call(o, k) ? o[k] : undefined);

/** Kobo: the full path is one flat key; ODK: one nested object per segment below the entry. */
function at(container: Obj, p: { key: string; rel: string[] }, shape: VersionSpec['shape']): unknown {
  if (shape === 'kobo') return own(container, p.key);
  let v: unknown = container;
  for (const seg of p.rel) {
    if (!isObj(v)) return undefined;
    v = own(v, seg);
  }
  return v;
}

/** Submission's own timestamps (a Date, or MySQL DATETIME text in UTC) as the column wants them. */
function instant(v: Date | string, dialect: Dialect): string {
  const iso = (v instanceof Date ? v : new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(v) ? v : `${v.replace(' ', 'T')}Z`)).toISOString();
  return dialect === 'postgresql' ? iso : iso.replace('T', ' ').replace('Z', '');
}

const str = (v: unknown): string | null => (v === null || v === undefined ? null : typeof v === 'string' ? v : String(v));

/** Kobo's `_attachments` entry for a file answer: same file name, same question (index-free), not deleted. */
function attachmentUrl(data: Obj, leaf: Leaf, fileName: string): string | null {
  const list = data._attachments;
  if (!Array.isArray(list)) return null;
  const path = leaf.key;
  for (const a of list) {
    if (!isObj(a) || a.is_deleted === true || typeof a.download_url !== 'string') continue;
    const xp = typeof a.question_xpath === 'string' ? a.question_xpath.replace(/\[\d+\]/g, '') : null;
    if (xp !== null && xp !== path) continue;
    const fn = typeof a.filename === 'string' ? a.filename.slice(a.filename.lastIndexOf('/') + 1) : '';
    if (fn === fileName || (xp === path && fn.replace(/[^\w.-]/g, '_') === fileName.replace(/[^\w.-]/g, '_'))) return a.download_url;
  }
  return null;
}

/** Where attachment files were stored, by `<submission key>\0<file name>` (the Attachment table). */
export type StoredLocations = ReadonlyMap<string, string>;

export const locationKey = (submissionKey: string, name: string): string => `${submissionKey}\0${name}`;

/** Child keys stay short enough for the key column; a very deep path is hashed. */
function childKey(parentKey: string, name: string, index: number): string {
  const k = `${parentKey}/${name}[${index}]`;
  return k.length <= 500 ? k : `${parentKey.slice(0, 400)}/${hash8(k)}${hash8(`${k}#`)}`;
}

export function typedRows(plan: Plan, stored: StoredRow[], dialect: Dialect, locations: StoredLocations = new Map()): TypedRows {
  const out: TypedRows = { rows: new Map(plan.tables.map((t) => [t.id, []])), unfit: 0 };
  // The submission being typed: attachments are recorded per submission, whatever repeat entry holds the file.
  let rootKey = '';
  // `values` holds the system columns first: the table's columns start at `base`.
  let base = 0;
  const put = (table: PhysTable, values: unknown[], col: string, v: Out) => {
    if (v === BAD) {
      out.unfit++;
      return;
    }
    const i = table.index.get(col);
    if (i !== undefined) values[base + i] = v;
  };

  const fill = (node: NodeSpec, container: Obj, data: Obj, spec: VersionSpec, table: PhysTable, values: unknown[], offset: number) => {
    base = offset;
    for (const leaf of node.leaves) {
      const raw = at(container, leaf, spec.shape);
      if (raw === undefined || raw === null || raw === '') continue;
      switch (leaf.kind) {
        case 'plain':
          put(table, values, leaf.cols[0]!, coerce(leaf.storage, raw, dialect));
          break;
        case 'geopoint': {
          const p = point(raw);
          if (p === BAD) {
            out.unfit++;
            break;
          }
          if (p === null) break;
          const parts = [p.latitude, p.longitude, p.altitude, p.accuracy];
          // A point without a usable latitude/longitude is one bad answer, not four.
          const lat = coerce('numeric', parts[0], dialect);
          const lon = coerce('numeric', parts[1], dialect);
          if (lat === BAD || lon === BAD || lat === null || lon === null) {
            out.unfit++;
            break;
          }
          leaf.cols.forEach((c, i) => put(table, values, c, coerce('numeric', parts[i], dialect)));
          break;
        }
        case 'binary': {
          const name = coerce('text', raw, dialect);
          put(table, values, leaf.cols[0]!, name);
          if (typeof name !== 'string') break;
          if (leaf.cols[1]) put(table, values, leaf.cols[1], locations.get(locationKey(rootKey, name)) ?? null);
          if (leaf.cols[2]) put(table, values, leaf.cols[2], attachmentUrl(data, leaf, name));
          break;
        }
        case 'multi': {
          const textValue = coerce('text', raw, dialect);
          put(table, values, leaf.cols[0]!, textValue);
          const chosen = new Set(typeof textValue === 'string' ? textValue.split(/\s+/).filter(Boolean) : []);
          leaf.choices!.forEach((c, i) => put(table, values, leaf.cols[i + 1]!, chosen.has(c)));
          break;
        }
      }
    }
  };

  const walk = (node: NodeSpec, container: Obj, data: Obj, spec: VersionSpec, rootKey: string, parentKey: string) => {
    for (const r of node.repeats) {
      const entries = at(container, r, spec.shape);
      if (!Array.isArray(entries)) continue;
      const table = plan.byId.get(r.node.tableId)!;
      const rows = out.rows.get(table.id)!;
      for (let i = 0; i < entries.length; i++) {
        const e: unknown = entries[i];
        if (!isObj(e)) continue;
        const id = spec.shape === 'odk' && typeof e.__id === 'string' && e.__id ? e.__id : childKey(parentKey, r.name, i + 1);
        const values: unknown[] = [id, parentKey, rootKey, i + 1];
        for (let c = 0; c < table.columns.length; c++) values.push(null);
        fill(r.node, e, data, spec, table, values, SYSTEM_CHILD.length);
        rows.push(values);
        walk(r.node, e, data, spec, rootKey, id);
      }
    }
  };

  const parent = plan.byId.get('')!;
  for (const s of stored) {
    const data: Obj = isObj(s.data) ? s.data : typeof s.data === 'string' ? (JSON.parse(s.data) as Obj) : {};
    const system = isObj(data.__system) ? data.__system : {};
    const formVersion = str(data.__version__ ?? system.formVersion);
    const spec = (formVersion !== null && plan.logical.versions.get(formVersion)) || plan.logical.latest;
    const validation = isObj(data._validation_status) ? data._validation_status.uid : undefined;
    const review = str(validation ?? system.reviewState);
    rootKey = s.key;
    const values: unknown[] = [s.key, s.version, instant(s.submittedAt, dialect), instant(s.updatedAt, dialect), Boolean(s.deleted), formVersion, review];
    for (let c = 0; c < parent.columns.length; c++) values.push(null);
    fill(spec.root, data, data, spec, parent, values, SYSTEM_PARENT.length);
    out.rows.get('')!.push(values);
    walk(spec.root, data, data, spec, s.key, s.key);
  }
  return out;
}
