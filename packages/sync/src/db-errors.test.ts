import { describe, expect, it } from 'vitest';
import { isDataError, isUnavailable } from './db-errors.ts';

describe('database error classes', () => {
  it('a refused value is a data error, to be isolated', () => {
    expect(isDataError({ code: '22P05' })).toBe(true); // pg: untranslatable character
    expect(isDataError({ sqlState: '23000', errno: 4025 })).toBe(true); // mariadb: CHECK failed
    expect(isUnavailable({ code: '22P05' })).toBe(false);
  });

  it('a statement over MySQL max_allowed_packet is the batch size, not an outage', () => {
    const tooLarge = { errno: 1153, sqlState: '08S01', code: 'ER_NET_PACKET_TOO_LARGE', fatal: true };
    expect(isDataError(tooLarge)).toBe(true);
    expect(isUnavailable(tooLarge)).toBe(false);
  });

  it('a database that cannot be reached is an outage', () => {
    expect(isUnavailable({ code: 'ECONNREFUSED' })).toBe(true);
    expect(isUnavailable({ code: '57P01' })).toBe(true); // admin shutdown
    expect(isUnavailable({ sqlState: '08S01', fatal: true, errno: 2013 })).toBe(true);
    expect(isDataError({ code: 'ECONNREFUSED' })).toBe(false);
  });
});
