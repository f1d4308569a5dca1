/**
 * The slice of SoQL fieldsync needs: `$where` comparisons (`>`, `>=`, `<`,
 * `<=`, `=`, `!=`) of a field with a single-quoted literal (a quote inside
 * doubled) or a number, joined by AND; `$order` by fields ASC/DESC; `$select`
 * with `:*`, `*` and field names. Timestamps compare as instants (a literal
 * without a zone is a floating time, read as UTC like the values), numbers as
 * numbers, everything else as text. A missing value compares false (SQL NULL).
 */
import type { SocrataRow } from './socrata.data.ts';
import { SYSTEM_FIELDS } from './socrata.data.ts';

export class SoqlError extends Error {}

type Op = '>' | '>=' | '<' | '<=' | '=' | '!=';
export interface Comparison {
  field: string;
  op: Op;
  value: string | number;
}

const FIELD = /^:?@?[a-z_][a-z0-9_]*/i;
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?$/;

export function parseWhere(where: string | undefined): Comparison[] {
  if (where === undefined || where.trim() === '') return [];
  const out: Comparison[] = [];
  let s = where.trim();
  for (;;) {
    const f = FIELD.exec(s);
    if (!f) throw new SoqlError(`could not parse $where near "${s.slice(0, 30)}"`);
    s = s.slice(f[0].length).trimStart();
    const op = /^(>=|<=|!=|<>|>|<|=)/.exec(s);
    if (!op) throw new SoqlError(`expected a comparison after ${f[0]}`);
    s = s.slice(op[0].length).trimStart();
    let value: string | number;
    if (s.startsWith("'")) {
      let i = 1;
      let v = '';
      for (;;) {
        if (i >= s.length) throw new SoqlError('unterminated string literal in $where');
        if (s[i] === "'") {
          if (s[i + 1] === "'") {
            v += "'";
            i += 2;
            continue;
          }
          break;
        }
        v += s[i++];
      }
      value = v;
      s = s.slice(i + 1).trimStart();
    } else {
      const n = /^-?\d+(\.\d+)?/.exec(s);
      if (!n) throw new SoqlError(`expected a literal after ${f[0]} ${op[0]}`);
      value = Number(n[0]);
      s = s.slice(n[0].length).trimStart();
    }
    out.push({ field: f[0], op: (op[0] === '<>' ? '!=' : op[0]) as Op, value });
    if (s === '') return out;
    const and = /^AND\s+/i.exec(s);
    if (!and) throw new SoqlError(`only AND is supported between comparisons, near "${s.slice(0, 30)}"`);
    s = s.slice(and[0].length);
  }
}

const instant = (s: string) => Date.parse(/(Z|[+-]\d\d:?\d\d)$/.test(s) ? s : `${s}Z`);

function compare(a: unknown, b: string | number): number | null {
  if (a === undefined || a === null) return null;
  if (typeof b === 'number' || (typeof a === 'number' && /^-?\d/.test(String(b)))) {
    const x = Number(a);
    const y = Number(b);
    return Number.isNaN(x) || Number.isNaN(y) ? null : x - y;
  }
  const sa = String(a);
  if (TIME.test(sa) && TIME.test(b)) return instant(sa) - instant(b);
  return sa < b ? -1 : sa > b ? 1 : 0;
}

export function matches(row: SocrataRow, where: Comparison[]): boolean {
  for (const c of where) {
    const d = compare(row[c.field], c.value);
    if (d === null) return false;
    const ok = c.op === '>' ? d > 0 : c.op === '>=' ? d >= 0 : c.op === '<' ? d < 0 : c.op === '<=' ? d <= 0 : c.op === '=' ? d === 0 : d !== 0;
    if (!ok) return false;
  }
  return true;
}

export function parseOrder(order: string | undefined): { field: string; desc: boolean }[] {
  if (!order) return [];
  return order.split(',').map((part) => {
    const m = /^\s*(:?@?[a-z_][a-z0-9_]*)\s*(ASC|DESC)?\s*$/i.exec(part);
    if (!m) throw new SoqlError(`could not parse $order "${part}"`);
    return { field: m[1]!, desc: (m[2] ?? '').toUpperCase() === 'DESC' };
  });
}

export function sortRows(rows: SocrataRow[], order: { field: string; desc: boolean }[]): SocrataRow[] {
  return [...rows].sort((a, b) => {
    for (const o of order) {
      const x = a[o.field];
      const y = b[o.field];
      // NULLs last ascending (PostgreSQL's order, which Socrata's backend uses).
      if (x === undefined && y === undefined) continue;
      if (x === undefined) return o.desc ? -1 : 1;
      if (y === undefined) return o.desc ? 1 : -1;
      const d = compare(x, typeof y === 'number' ? y : String(y)) ?? 0;
      if (d !== 0) return o.desc ? -d : d;
    }
    return 0;
  });
}

/** The projection of `$select`: without one, user columns only (system fields appear only when asked for). */
export function projector(select: string | undefined, userFields: string[]): (row: SocrataRow) => SocrataRow {
  const fields: string[] = [];
  for (const raw of (select ?? '*').split(',')) {
    const f = raw.trim();
    if (f === ':*') fields.push(...SYSTEM_FIELDS);
    else if (f === '*') fields.push(...userFields);
    else if (FIELD.test(f) && FIELD.exec(f)![0] === f) fields.push(f);
    else throw new SoqlError(`could not parse $select item "${f}"`);
  }
  return (row) => {
    const out: SocrataRow = {};
    for (const f of fields) if (row[f] !== undefined) out[f] = row[f];
    return out;
  };
}
