/** Kobo strings and ODK typed JSON go through the same coercions and come out equal. */
import { describe, expect, it } from 'vitest';
import { BAD, boolean, date, decimal, integer, point, text, time, timestamp, timestampLocal } from './coerce.ts';
import { IDENT_LIMIT, shorten, slug, uniqueName } from './ident.ts';

describe('coercion', () => {
  it('keeps a floating timestamp (Socrata calendar_date) as written, shifting nothing', () => {
    expect(timestampLocal('2014-10-13T00:00:00.000', 'postgresql')).toBe('2014-10-13T00:00:00.000');
    expect(timestampLocal('2014-10-13T23:59:58.5', 'mysql')).toBe('2014-10-13 23:59:58.500');
    expect(timestampLocal('2014-10-13', 'mysql')).toBe('2014-10-13 00:00:00.000');
    expect(timestampLocal('2014-10-13T10:00:00+02:00', 'postgresql')).toBe('2014-10-13T08:00:00.000Z');
    expect(timestampLocal('2014-02-30T00:00:00', 'postgresql')).toBe(BAD);
    expect(timestampLocal('2014-10-13T25:00:00', 'postgresql')).toBe(BAD);
    expect(timestampLocal(20141013, 'postgresql')).toBe(BAD);
  });

  it('reads Kobo strings and ODK numbers as the same value', () => {
    expect(integer('41')).toBe('41');
    expect(integer(41)).toBe('41');
    expect(integer('41.0')).toBe('41');
    expect(decimal('18250.50')).toBe('18250.5');
    expect(decimal(18250.5)).toBe('18250.5');
    expect(decimal(1e-7)).toBe('0.0000001');
    expect(decimal('-0.0')).toBe('0');
    expect(decimal('1.5e3')).toBe('1500');
    expect(boolean('true')).toBe(true);
    expect(boolean('false')).toBe(false);
    expect(boolean(true)).toBe(true);
    expect(timestamp('2026-11-16T10:20:30.123+03:00', 'postgresql')).toBe('2026-11-16T07:20:30.123Z');
    expect(timestamp('2026-11-16T10:20:30.123+03:00', 'mysql')).toBe('2026-11-16 07:20:30.123');
    expect(time('14:30:00.000+03:00')).toBe('14:30:00.000');
    expect(date('2026-11-16')).toBe('2026-11-16');
    expect(point('-1.2833 36.8167 1650 5')).toEqual({ latitude: '-1.2833', longitude: '36.8167', altitude: '1650', accuracy: '5' });
    expect(point({ type: 'Point', coordinates: [36.8167, -1.2833, 1650], properties: { accuracy: 5 } })).toEqual({ latitude: -1.2833, longitude: 36.8167, altitude: 1650, accuracy: 5 });
  });

  it('refuses what does not fit, and treats absent as NULL', () => {
    for (const v of ['n/a', '4 people', '1.5', '99999999999999999999']) expect(integer(v)).toBe(BAD);
    for (const v of ['lots', '1,5', '1e999', 'NaN']) expect(decimal(v)).toBe(BAD);
    expect(decimal('1'.repeat(27))).toBe(BAD); // beyond DECIMAL(38,12)
    expect(date('2026-02-30')).toBe(BAD);
    expect(date('yesterday')).toBe(BAD);
    expect(timestamp('not a time', 'postgresql')).toBe(BAD);
    expect(time('25:00')).toBe(BAD);
    expect(boolean('maybe')).toBe(BAD);
    expect(integer('')).toBeNull();
    expect(integer(null)).toBeNull();
    expect(text('a\u0000b')).toBe('ab'); // PostgreSQL text cannot hold NUL
  });
});

describe('identifiers', () => {
  it('slugs to safe characters, keeps non-Latin names distinct', () => {
    expect(slug('Café Olé')).toBe('cafe_ole');
    expect(slug('x"; DROP TABLE t; --')).toBe('x_drop_table_t');
    expect(slug('名前')).toMatch(/^x_[0-9a-f]{8}$/);
    expect(slug('🌩')).not.toBe(slug('🤟'));
  });

  it('shortens deterministically with a hash and resolves collisions', () => {
    const long = 'q'.repeat(80);
    expect(shorten(long, IDENT_LIMIT.postgresql)).toHaveLength(63);
    expect(shorten(long, IDENT_LIMIT.postgresql)).toBe(shorten(long, 63));
    expect(shorten(`${long}a`, 63)).not.toBe(shorten(`${long}b`, 63));
    const taken = new Set(['age']);
    const n = uniqueName('age', 'grp/age', 63, (x) => taken.has(x));
    expect(n).toMatch(/^age_[0-9a-f]{8}$/);
    expect(uniqueName('age', 'grp/age', 63, (x) => taken.has(x))).toBe(n);
  });
});
