import { createHash } from 'node:crypto';
import type { Dialect } from '@fieldsync/db';

/**
 * Identifier limits: PostgreSQL truncates silently past 63 *bytes*, MySQL refuses
 * past 64 characters. Our names are ASCII only, so bytes = characters.
 */
export const IDENT_LIMIT: Record<Dialect, number> = { postgresql: 63, mysql: 64 };

const SAFE = /^[a-z0-9_]+$/;

export function hash8(s: string): string {
  return createHash('sha1').update(s).digest('hex').slice(0, 8);
}

/**
 * A readable, safe name segment: accents folded (é → e), everything outside
 * [a-z0-9] becomes `_`. A segment with nothing left (`名前`, `🌩`) becomes
 * `x_<hash>` so it stays distinct and stable.
 */
export function slug(s: string): string {
  const folded = s.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase();
  const out = folded.replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '');
  if (out === '') return `x_${hash8(s)}`;
  return out;
}

/** Cuts `name` to `limit` characters, replacing the tail with a hash of the whole name. */
export function shorten(name: string, limit: number, hashOf: string = name): string {
  if (name.length <= limit) return name;
  return `${name.slice(0, limit - 9).replace(/_+$/, '')}_${hash8(hashOf)}`;
}

/**
 * Picks a name not in `taken`: the preferred one, else it with a hash of `identity`
 * (the thing named, e.g. its path) appended, else with a counter. Deterministic for
 * the same inputs; the caller persists the result so it never changes afterwards.
 */
export function uniqueName(preferred: string, identity: string, limit: number, taken: (n: string) => boolean): string {
  const first = shorten(preferred, limit);
  if (!taken(first)) return first;
  const h = hash8(identity);
  const second = `${preferred.slice(0, limit - 9).replace(/_+$/, '')}_${h}`;
  if (!taken(second)) return second;
  for (let i = 2; ; i++) {
    const suffix = `_${h}_${i}`;
    const n = `${preferred.slice(0, limit - suffix.length).replace(/_+$/, '')}${suffix}`;
    if (!taken(n)) return n;
  }
}

/** Quotes a name we generated, after checking it once more (defence in depth). */
export function q(dialect: Dialect, name: string): string {
  if (!SAFE.test(name) || name.length > IDENT_LIMIT[dialect]) throw new Error(`unsafe SQL identifier: ${JSON.stringify(name)}`);
  return dialect === 'postgresql' ? `"${name}"` : `\`${name}\``;
}

/**
 * A string literal for the one place SQL takes no parameters (COMMENT). Backslashes
 * and quotes are escaped; PostgreSQL gets an E'' string so backslash escaping holds
 * whatever standard_conforming_strings says.
 */
export function literal(dialect: Dialect, s: string): string {
  const body = s.replace(/\0/g, '').replace(/\\/g, '\\\\').replace(/'/g, "''");
  return dialect === 'postgresql' ? `E'${body}'` : `'${body}'`;
}
