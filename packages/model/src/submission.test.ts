import { describe, expect, it } from 'vitest';
import { CanonicalSubmission, compareVersions, newestPerKey, type CanonicalSubmissionInput } from './submission.ts';

const s = (over: Partial<CanonicalSubmissionInput> = {}): CanonicalSubmission =>
  CanonicalSubmission.parse({
    sourceId: 'kobo', formId: 'f', key: '1', version: 'uuid:a',
    updatedAt: '2026-11-01T10:00:00.000Z', submittedAt: '2026-11-01T10:00:00.000Z',
    observedAt: '2026-11-01T10:00:01.000Z', data: {}, via: 'poll', ...over,
  });

describe('canonical submission', () => {
  it('defaults deleted to false and refuses what the tables cannot hold', () => {
    expect(s().deleted).toBe(false);
    expect(() => s({ key: '' })).toThrow(/key/);
    expect(() => s({ key: 'k'.repeat(192) })).toThrow(/key/);
    expect(() => s({ updatedAt: 'yesterday' })).toThrow(/updatedAt/);
    expect(() => s({ via: 'carrier-pigeon' as never })).toThrow(/via/);
    expect(() => s({ data: [] as never })).toThrow(/data/);
  });

  it('orders versions by updatedAt, then version', () => {
    expect(compareVersions(s({ updatedAt: '2026-11-02T00:00:00Z' }), s())).toBeGreaterThan(0);
    expect(compareVersions(s({ version: 'uuid:b' }), s())).toBeGreaterThan(0);
    expect(compareVersions(s(), s())).toBe(0);
    // Time zones are compared as instants, not strings.
    expect(compareVersions(s({ updatedAt: '2026-11-01T11:00:00+02:00' }), s())).toBeLessThan(0);
  });

  it('keeps the newest per key, and the latest observation of equal versions', () => {
    const old = s({ data: { v: 1 } });
    const edit = s({ version: 'uuid:b', updatedAt: '2026-11-03T00:00:00Z', data: { v: 2 } });
    const tomb = s({ version: 'uuid:b', updatedAt: '2026-11-03T00:00:00Z', deleted: true, observedAt: '2026-11-04T00:00:00Z' });
    const other = s({ key: '2' });
    const out = newestPerKey([edit, old, other, tomb]);
    expect(out).toHaveLength(2);
    expect(out.find((x) => x.key === '1')).toBe(tomb);
    expect(newestPerKey([edit, old]).find((x) => x.key === '1')).toBe(edit);
  });
});
