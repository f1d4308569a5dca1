import { describe, expect, it } from 'vitest';
import { koboTime, toCanonical } from './kobo.canonical.ts';

/** What koboTime always did: a Date round trip of the time read as UTC. */
const roundTrip = (v: string): string => new Date(Date.parse(/([zZ]|[+-]\d\d:?\d\d)$/.test(v) ? v : `${v}Z`)).toISOString();

describe('koboTime', () => {
  it("writes Kobo's zoneless seconds exactly as the Date round trip does, rollovers included", () => {
    let seed = 42;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const samples = Array.from({ length: 20_000 }, () => new Date(Math.floor(rnd() * Date.UTC(9999, 11, 31))).toISOString().slice(0, 19));
    const edges = [
      '2024-02-29T10:00:00', '2026-02-29T10:00:00', '2026-02-30T10:00:00', '2000-02-29T00:00:00', '1900-02-29T00:00:00',
      '2026-04-31T10:00:00', '2026-12-31T23:59:59', '2026-01-01T24:00:00', '0000-01-01T00:00:00', '9999-12-31T23:59:59',
      '2026-11-16T09:12:44', '2026-11-16T09:12', '2026-11-16T09:12:44.5', '2026-11-16T09:12:44+03:00', '2026-11-16T09:12:44Z',
    ];
    for (const v of [...samples, ...edges]) expect(koboTime(v, '_submission_time'), v).toBe(roundTrip(v));
  });

  it('refuses what is no time, as before', () => {
    for (const v of ['2026-13-01T10:00:00', '2026-01-01T23:59:60', '2026-00-10T10:00:00', 'yesterday', 1_762_000_000]) {
      expect(() => koboTime(v, '_submission_time')).toThrow(/_submission_time/);
    }
  });
});

describe('toCanonical', () => {
  it("dates each record's observation by its own page's time", () => {
    const record = (id: number) => ({ _id: id, 'meta/instanceID': `uuid:${id}`, _submission_time: '2026-11-16T09:12:44' });
    const ctx = (iso: string) => ({ sourceId: 'kobo', formId: 'aForm', observedAt: new Date(iso), via: 'poll' as const });
    const a = toCanonical(record(1), ctx('2026-12-01T10:00:00.000Z'));
    const b = toCanonical(record(2), ctx('2026-12-01T10:00:00.000Z'));
    const c = toCanonical(record(3), ctx('2026-12-01T10:05:00.123Z'));
    expect([a.observedAt, b.observedAt, c.observedAt]).toEqual(['2026-12-01T10:00:00.000Z', '2026-12-01T10:00:00.000Z', '2026-12-01T10:05:00.123Z']);
  });
});
