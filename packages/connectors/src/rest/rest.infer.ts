import { createHash } from 'node:crypto';
import type { FieldType, FormDefinition, FormField } from '@fieldsync/model';

/**
 * Typed tables for REST endpoints, whose APIs publish no schema: the field types
 * are inferred from the records. Types only ever widen (integer → decimal → text;
 * date → datetime → text; anything mixed → text), so a definition inferred later
 * never narrows a column. Nested objects become groups (one column per leaf,
 * `scores__quality`); arrays are kept as JSON text. A null says nothing: a field
 * gets its column once a value is seen.
 */

/** What inference knows about one field: a scalar type, or an object's fields. */
export type Inferred = { type: Exclude<FieldType, 'group'> } | { type: 'group'; fields: Map<string, Inferred> };

const ISO_DATETIME = /^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d(:?\d\d)?)?$/;
const ISO_DATE = /^\d{4}-\d\d-\d\d$/;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function scalarType(v: unknown): Exclude<FieldType, 'group'> | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'boolean') return 'boolean';
  if (typeof v === 'number') return Number.isSafeInteger(v) ? 'integer' : 'decimal';
  if (typeof v === 'string') {
    if (ISO_DATETIME.test(v) && !Number.isNaN(Date.parse(v))) return 'datetime';
    if (ISO_DATE.test(v) && !Number.isNaN(Date.parse(v))) return 'date';
    return 'text';
  }
  return 'text'; // arrays: JSON text
}

/** The narrowest type holding both. */
export function widen(a: FieldType, b: FieldType): FieldType {
  if (a === b) return a;
  const pair = new Set([a, b]);
  if (pair.has('integer') && pair.has('decimal')) return 'decimal';
  if (pair.has('date') && pair.has('datetime')) return 'datetime';
  return 'text';
}

/** Merges one value into what is known of a field; returns the (possibly new) knowledge. */
function mergeValue(known: Inferred | undefined, v: unknown): Inferred | undefined {
  if (isObj(v)) {
    if (known && known.type !== 'group') return { type: 'text' }; // was a scalar, now an object: JSON text
    const fields = known?.fields ?? new Map<string, Inferred>();
    for (const [k, x] of Object.entries(v)) {
      if (k === '') continue; // no column can be named after it
      const m = mergeValue(fields.get(k), x);
      if (m) fields.set(k, m);
    }
    return { type: 'group', fields };
  }
  const t = scalarType(v);
  if (t === null) return known;
  if (!known) return { type: t };
  if (known.type === 'group') return { type: 'text' };
  return { type: widen(known.type, t) as Exclude<FieldType, 'group'> };
}

function mergeInferred(a: Inferred | undefined, b: Inferred): Inferred {
  if (!a) return b;
  if (a.type === 'group' && b.type === 'group') {
    const fields = new Map(a.fields);
    for (const [k, v] of b.fields) fields.set(k, mergeInferred(fields.get(k), v));
    return { type: 'group', fields };
  }
  if (a.type === 'group' || b.type === 'group') return { type: 'text' };
  return { type: widen(a.type, b.type) as Exclude<FieldType, 'group'> };
}

/** Inference state for one endpoint: fields in order of first appearance. */
export class TypeInference {
  readonly fields = new Map<string, Inferred>();

  /** Seeds from a stored definition, so a new process never infers narrower than what tables already hold. */
  static from(def: FormDefinition | undefined): TypeInference {
    const inf = new TypeInference();
    const load = (fields: FormField[], into: Map<string, Inferred>) => {
      for (const f of fields) {
        if (f.type === 'group') {
          const sub = new Map<string, Inferred>();
          load(f.children ?? [], sub);
          into.set(f.name, { type: 'group', fields: sub });
        } else if (f.type !== 'repeat') into.set(f.name, { type: f.type });
      }
    };
    if (def) load(def.fields, inf.fields);
    return inf;
  }

  add(records: readonly Record<string, unknown>[]): void {
    for (const r of records) {
      for (const [k, v] of Object.entries(r)) {
        if (k === '') continue;
        const m = mergeValue(this.fields.get(k), v);
        if (m) this.fields.set(k, m);
      }
    }
  }

  /** Widens this by what `other` has seen. */
  mergeFrom(other: TypeInference): void {
    for (const [k, v] of other.fields) this.fields.set(k, mergeInferred(this.fields.get(k), v));
  }

  toFields(): FormField[] {
    const build = (fields: Map<string, Inferred>, prefix: string[]): FormField[] =>
      [...fields].map(([name, inf]) => {
        const path = [...prefix, name];
        if (inf.type === 'group') return { name, path, type: 'group', sourceType: 'object', labels: {}, children: build(inf.fields, path) };
        return { name, path, type: inf.type, sourceType: `json:${inf.type}`, labels: {} };
      });
    return build(this.fields, []);
  }

  /** A stable id of the inferred layout: the same layout always gets the same version. */
  version(): string {
    return `inferred-${createHash('sha256').update(JSON.stringify(this.toFields().map(sig))).digest('hex').slice(0, 16)}`;
  }

  definition(sourceId: string, formId: string, title: string): FormDefinition {
    return { sourceId, formId, version: this.version(), title, shape: 'flat', languages: [], fields: this.toFields(), choices: [] };
  }
}

const sig = (f: FormField): unknown => (f.children ? [f.name, f.children.map(sig)] : [f.name, f.type]);
