/*
 * The subset of MongoDB the Kobo data API passes through from `query`, `sort`
 * and `fields`. Comparisons are type-strict like Mongo's: `{"_id":{"$gt":"5"}}`
 * (a string) matches no integer `_id` — the trap a client falls into when it
 * sends the cursor as a string.
 */

/** A `query`/`sort`/`fields` value the server refuses (answered 400). */
export class QueryError extends Error {}

type Doc = Record<string, unknown>;

const OPERATORS = new Set(['$gt', '$gte', '$lt', '$lte', '$in', '$nin', '$ne', '$eq', '$exists']);

/** Mongo's cross-type order, reduced to the types JSON has. */
function typeRank(v: unknown): number {
  if (v === undefined || v === null) return 0;
  if (typeof v === 'number') return 1;
  if (typeof v === 'string') return 2;
  if (Array.isArray(v)) return 4;
  if (typeof v === 'object') return 3;
  return 5; // boolean
}

function sameType(a: unknown, b: unknown): boolean {
  return typeRank(a) === typeRank(b);
}

function equal(a: unknown, b: unknown): boolean {
  if ((a === undefined || a === null) && b === null) return true; // {"x": null} matches missing too
  return JSON.stringify(a) === JSON.stringify(b);
}

function cmp(a: unknown, b: unknown): number {
  const ra = typeRank(a);
  const rb = typeRank(b);
  if (ra !== rb) return ra - rb;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  const sa = JSON.stringify(a ?? null);
  const sb = JSON.stringify(b ?? null);
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

function matchOperator(value: unknown, op: string, arg: unknown): boolean {
  switch (op) {
    case '$eq':
      return equal(value, arg);
    case '$ne':
      return !equal(value, arg);
    case '$gt':
      return value !== undefined && sameType(value, arg) && cmp(value, arg) > 0;
    case '$gte':
      return value !== undefined && sameType(value, arg) && cmp(value, arg) >= 0;
    case '$lt':
      return value !== undefined && sameType(value, arg) && cmp(value, arg) < 0;
    case '$lte':
      return value !== undefined && sameType(value, arg) && cmp(value, arg) <= 0;
    case '$in':
    case '$nin': {
      if (!Array.isArray(arg)) throw new QueryError(`${op} needs an array`);
      const hit = arg.some((x) => equal(value, x));
      return op === '$in' ? hit : !hit;
    }
    case '$exists':
      return (value !== undefined) === Boolean(arg);
    default:
      throw new QueryError(`unsupported query operator ${op}`);
  }
}

function isOperatorObject(v: unknown): v is Doc {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length > 0 && Object.keys(v).every((k) => k.startsWith('$'));
}

/** True when `doc` matches the Mongo filter `filter`. */
export function matches(doc: Doc, filter: Doc): boolean {
  for (const [field, cond] of Object.entries(filter)) {
    if (field === '$or' || field === '$and') {
      if (!Array.isArray(cond) || cond.length === 0) throw new QueryError(`${field} needs a non-empty array`);
      const parts = cond.map((c) => {
        if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new QueryError(`${field} items must be objects`);
        return matches(doc, c as Doc);
      });
      if (field === '$or' ? !parts.some(Boolean) : !parts.every(Boolean)) return false;
      continue;
    }
    if (field.startsWith('$')) throw new QueryError(`unsupported query operator ${field}`);
    const value = doc[field];
    if (isOperatorObject(cond)) {
      for (const [op, arg] of Object.entries(cond)) {
        if (!OPERATORS.has(op)) throw new QueryError(`unsupported query operator ${op}`);
        if (!matchOperator(value, op, arg)) return false;
      }
    } else if (!equal(value, cond)) {
      return false;
    }
  }
  return true;
}

/**
 * Documents matching `filter`, in `sort` order, from documents sorted by `_id`. A keyset
 * page (`{"_id": {"$gt": N}}`, perhaps with `$in`/`$or`, sorted by `_id`) starts at a
 * binary search, as Mongo's `_id` index does, instead of testing every document on
 * every page: the walk over a large form stays linear, so the simulator does not eat
 * the CPU of the pipeline it feeds.
 */
export function selectDocs<T extends Doc & { _id: number }>(byId: T[], filter: Doc, sort: [string, 1 | -1][]): T[] {
  const id = filter._id;
  const keyset =
    sort.length === 1 && sort[0]![0] === '_id' && sort[0]![1] === 1 &&
    Object.keys(filter).every((k) => k === '_id' || k === '$or') &&
    isOperatorObject(id) && typeof id.$gt === 'number' && Object.keys(id).every((op) => op === '$gt' || op === '$in');
  if (!keyset) return sortDocs(byId.filter((r) => matches(r, filter)), sort);
  const gt = id.$gt as number;
  /** Index of the first document with `_id` above n. */
  const above = (n: number) => {
    let lo = 0;
    let hi = byId.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (byId[mid]!._id > n) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
  const $in = id.$in;
  if (Array.isArray($in) && $in.every((n) => typeof n === 'number')) {
    // A re-fetch by ids: each one looked up, not the whole form filtered.
    const hits: T[] = [];
    for (const n of [...new Set($in as number[])].filter((x) => x > gt).sort((a, b) => a - b)) {
      const d = byId[above(n) - 1]; // the last document with `_id` ≤ n
      if (d?._id === n) hits.push(d);
    }
    return '$or' in filter ? hits.filter((r) => matches(r, filter)) : hits;
  }
  const tail = byId.slice(above(gt));
  return '$or' in filter || '$in' in id ? tail.filter((r) => matches(r, filter)) : tail;
}

/** Parses a JSON query parameter, or throws QueryError naming the parameter. */
export function parseJsonParam(name: string, raw: string | undefined): unknown {
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    throw new QueryError(`Invalid JSON for \`${name}\`: ${raw.slice(0, 100)}`);
  }
}

export function parseQuery(raw: string | undefined): Doc {
  const q = parseJsonParam('query', raw) ?? {};
  if (typeof q !== 'object' || q === null || Array.isArray(q)) throw new QueryError('`query` must be a JSON object');
  return q as Doc;
}

/** `sort` as an ordered list of [field, direction]; default `{"_id": 1}`. */
export function parseSort(raw: string | undefined): [string, 1 | -1][] {
  const s = parseJsonParam('sort', raw);
  if (s === undefined) return [['_id', 1]];
  if (typeof s !== 'object' || s === null || Array.isArray(s)) throw new QueryError('`sort` must be a JSON object like {"_id": 1}');
  return Object.entries(s).map(([k, v]) => {
    if (v !== 1 && v !== -1) throw new QueryError(`\`sort\` direction for "${k}" must be 1 or -1`);
    return [k, v];
  });
}

export function sortDocs<T extends Doc>(docs: T[], sort: [string, 1 | -1][]): T[] {
  return [...docs].sort((a, b) => {
    for (const [k, dir] of sort) {
      const c = cmp(a[k], b[k]);
      if (c !== 0) return c * dir;
    }
    return 0;
  });
}

/** `fields` as a list of keys, `_uuid` and `meta/rootUuid` always added (as kpi does). */
export function parseFields(raw: string | undefined): string[] | undefined {
  const f = parseJsonParam('fields', raw);
  if (f === undefined) return undefined;
  if (!Array.isArray(f) || !f.every((x) => typeof x === 'string')) throw new QueryError('`fields` must be a JSON list of strings');
  return [...new Set([...f, '_uuid', 'meta/rootUuid'])];
}

export function project(doc: Doc, fields: string[] | undefined): Doc {
  if (!fields) return doc;
  return Object.fromEntries(fields.filter((f) => f in doc).map((f) => [f, doc[f]]));
}
