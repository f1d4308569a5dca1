/**
 * Answer → typed value. Kobo sends every answer as a string, ODK as typed JSON
 * (numbers as numbers, booleans as strings, geopoints as GeoJSON): both go
 * through the same functions so they land as equal values. A value that does
 * not fit returns BAD: the column gets NULL and the caller counts it.
 */
import type { Dialect } from '@fieldsync/db';

export const BAD = Symbol('bad');
export type Out = string | boolean | null | typeof BAD;

/** What a column stores, independent of the database. */
export type Storage = 'bigint' | 'numeric' | 'text' | 'boolean' | 'date' | 'time' | 'timestamp' | 'timestamp_local';

/** MySQL DECIMAL(38,12): at most 26 digits before the point. */
const MAX_INT_DIGITS = 26;
const INT64_MAX = 9223372036854775807n;

const empty = (v: unknown) => v === null || v === undefined || v === '';

/** A plain decimal string (no exponent, no superfluous zeros), or BAD. */
export function decimal(v: unknown): Out {
  if (empty(v)) return null;
  let s: string;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return BAD;
    s = String(v);
  } else if (typeof v === 'string') s = v.trim();
  else return BAD;
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d{1,3}))?$/.exec(s);
  if (!m || (m[2] === '' && (m[3] ?? '') === '')) return BAD;
  let int = m[2] ?? '';
  let frac = m[3] ?? '';
  const exp = Number(m[4] ?? 0);
  if (exp > 0) {
    frac = frac.padEnd(exp, '0');
    int += frac.slice(0, exp);
    frac = frac.slice(exp);
  } else if (exp < 0) {
    int = int.padStart(-exp + 1, '0');
    frac = int.slice(int.length + exp) + frac;
    int = int.slice(0, int.length + exp);
  }
  int = int.replace(/^0+/, '') || '0';
  frac = frac.replace(/0+$/, '');
  if (int.length > MAX_INT_DIGITS) return BAD;
  const neg = m[1] === '-' && (int !== '0' || frac !== '');
  return `${neg ? '-' : ''}${int}${frac ? `.${frac}` : ''}`;
}

export function integer(v: unknown): Out {
  if (empty(v)) return null;
  let s: string;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) return BAD;
    s = BigInt(v).toString();
  } else if (typeof v === 'string') {
    const m = /^\s*([+-]?\d+)(?:\.0*)?\s*$/.exec(v);
    if (!m) return BAD;
    s = BigInt(m[1]!).toString();
  } else return BAD;
  const b = BigInt(s);
  return b > INT64_MAX || b < -INT64_MAX - 1n ? BAD : s;
}

export function boolean(v: unknown): Out {
  if (empty(v)) return null;
  if (typeof v === 'boolean') return v;
  const s = String(v).trim().toLowerCase();
  if (s === 'true' || s === '1') return true;
  if (s === 'false' || s === '0') return false;
  return BAD;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

export function date(v: unknown): Out {
  if (empty(v)) return null;
  if (typeof v !== 'string') return BAD;
  const m = /^\s*(\d{4})-(\d{2})-(\d{2})(?:$|[T ])/.exec(v);
  if (!m) return BAD;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const t = new Date(Date.UTC(y, mo - 1, d));
  if (y < 1000 || t.getUTCMonth() !== mo - 1 || t.getUTCDate() !== d) return BAD;
  return `${m[1]}-${m[2]}-${m[3]}`;
}

/** An instant as ISO UTC; a zone-less time is read as UTC (both sources send zones). */
export function timestamp(v: unknown, dialect: Dialect): Out {
  if (empty(v)) return null;
  if (typeof v !== 'string') return BAD;
  const s = v.trim();
  if (!/^\d{4}-\d{2}-\d{2}/.test(s)) return BAD;
  const zoned = /(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$/.test(s) || s.length === 10;
  const t = Date.parse(zoned ? s : `${s}Z`);
  if (Number.isNaN(t)) return BAD;
  const d = new Date(t);
  const y = d.getUTCFullYear();
  if (y < 1000 || y > 9999) return BAD;
  const iso = d.toISOString();
  return dialect === 'postgresql' ? iso : iso.replace('T', ' ').replace('Z', '');
}

/**
 * A date and time without a zone (Socrata's floating timestamps), kept as written:
 * no zone is assumed, so nothing shifts. A zoned value is read as an instant and kept in UTC.
 */
export function timestampLocal(v: unknown, dialect: Dialect): Out {
  if (empty(v)) return null;
  if (typeof v !== 'string') return BAD;
  const s = v.trim();
  if (/(?:[zZ]|[+-]\d{2}:?\d{2})$/.test(s)) return timestamp(s, dialect);
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?$/.exec(s);
  if (!m || date(s) === BAD) return BAD;
  const [h, mi, se] = [Number(m[4] ?? 0), Number(m[5] ?? 0), Number(m[6] ?? 0)];
  if (h > 23 || mi > 59 || se > 59) return BAD;
  const ms = (m[7] ?? '').slice(0, 3).padEnd(3, '0');
  return `${m[1]}-${m[2]}-${m[3]}${dialect === 'postgresql' ? 'T' : ' '}${pad(h)}:${pad(mi)}:${pad(se)}.${ms}`;
}

/** Time of day as written (the offset, if any, is dropped: a time has no date to anchor it). */
export function time(v: unknown): Out {
  if (empty(v)) return null;
  if (typeof v !== 'string') return BAD;
  const m = /^\s*(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?/.exec(v);
  if (!m) return BAD;
  const [h, mi, se] = [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
  if (h > 23 || mi > 59 || se > 59) return BAD;
  const ms = (m[4] ?? '').slice(0, 3).padEnd(3, '0');
  return `${pad(h)}:${pad(mi)}:${pad(se)}.${ms}`;
}

export function text(v: unknown): Out {
  if (v === null || v === undefined) return null;
  // PostgreSQL text cannot hold NUL.
  const s = typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return s.includes('\0') ? s.replace(/\0/g, '') : s;
}

export function coerce(storage: Storage, v: unknown, dialect: Dialect): Out {
  switch (storage) {
    case 'bigint': return integer(v);
    case 'numeric': return decimal(v);
    case 'boolean': return boolean(v);
    case 'date': return date(v);
    case 'time': return time(v);
    case 'timestamp': return timestamp(v, dialect);
    case 'timestamp_local': return timestampLocal(v, dialect);
    case 'text': return text(v);
  }
}

export interface Point {
  latitude: unknown;
  longitude: unknown;
  altitude: unknown;
  accuracy: unknown;
}

/** Kobo `"lat lon alt acc"` or ODK GeoJSON `{coordinates: [lon, lat, alt], properties: {accuracy}}`. */
export function point(v: unknown): Point | null | typeof BAD {
  if (empty(v)) return null;
  if (typeof v === 'string') {
    const p = v.trim().split(/\s+/);
    if (p.length < 2) return BAD;
    return { latitude: p[0], longitude: p[1], altitude: p[2], accuracy: p[3] };
  }
  if (typeof v === 'object' && v !== null && Array.isArray((v as { coordinates?: unknown }).coordinates)) {
    const c = (v as { coordinates: unknown[] }).coordinates;
    const props = (v as { properties?: { accuracy?: unknown } }).properties;
    return { latitude: c[1], longitude: c[0], altitude: c[2], accuracy: props?.accuracy };
  }
  return BAD;
}

export const SQL_TYPE: Record<Dialect, Record<Storage, string>> = {
  postgresql: { bigint: 'bigint', numeric: 'numeric', text: 'text', boolean: 'boolean', date: 'date', time: 'time', timestamp: 'timestamptz', timestamp_local: 'timestamp' },
  mysql: { bigint: 'BIGINT', numeric: 'DECIMAL(38,12)', text: 'MEDIUMTEXT', boolean: 'BOOLEAN', date: 'DATE', time: 'TIME(3)', timestamp: 'DATETIME(3)', timestamp_local: 'DATETIME(3)' },
};
