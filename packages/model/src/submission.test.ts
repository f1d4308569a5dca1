import { describe, expect, it } from 'vitest';
import { CanonicalSubmission, compareCopies, compareVersions, newestPerKey, type CanonicalSubmissionInput } from './submission.ts';

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

describe('lineage (Kobo meta/deprecatedID)', () => {
  // Kobo gives edits no edit time: an edit's updatedAt is when it was seen, so arrival order is noise.
  const v0 = s({ version: 'uuid:0', via: 'webhook', updatedAt: '2026-11-01T10:00:00Z', data: { v: 0 } });
  const v1 = s({ version: 'uuid:1', replaces: 'uuid:0', via: 'webhook', updatedAt: '2026-11-05T00:00:00Z', data: { v: 1 } });
  const v2 = s({ version: 'uuid:2', replaces: 'uuid:1', via: 'webhook', updatedAt: '2026-11-03T00:00:00Z', data: { v: 2 } });

  it('keeps the end of the chain in every order of a batch', () => {
    const orders = [[v0, v1, v2], [v0, v2, v1], [v1, v0, v2], [v1, v2, v0], [v2, v0, v1], [v2, v1, v0]];
    for (const o of orders) expect(newestPerKey(o)[0]!.version).toBe('uuid:2');
  });

  it('a version beats the one it replaces whatever the times; a known superseded one loses', () => {
    expect(compareCopies(v2, v1)).toBeGreaterThan(0);
    expect(compareCopies(v1, v2)).toBeLessThan(0);
    // v0 vs v2 with v1 unseen: an edit beats the original.
    expect(compareCopies(v0, v2)).toBeLessThan(0);
    const v3 = s({ version: 'uuid:3', replaces: 'uuid:2', via: 'webhook', updatedAt: '2026-11-02T00:00:00Z' });
    expect(compareCopies(v3, v1, new Set(['uuid:1']))).toBeGreaterThan(0);
    expect(compareCopies(v1, v3, new Set(['uuid:1']))).toBeLessThan(0);
  });

  it("unlinked edits: the API's copy beats a webhook's, else updatedAt", () => {
    const a = s({ version: 'uuid:a', replaces: 'uuid:x', via: 'poll', updatedAt: '2026-11-01T00:00:00Z' });
    const b = s({ version: 'uuid:b', replaces: 'uuid:y', via: 'webhook', updatedAt: '2026-11-09T00:00:00Z' });
    expect(compareCopies(a, b)).toBeGreaterThan(0);
    expect(compareCopies({ ...b, via: 'sweep' }, a)).toBeGreaterThan(0);
  });

  it('same version: the API copy beats a webhook copy, never the reverse, whatever the times', () => {
    const hook = s({ version: 'uuid:e', replaces: 'uuid:0', via: 'webhook', updatedAt: '2026-11-09T00:00:00Z', data: { q: 1 } });
    const api = { ...hook, via: 'poll' as const, updatedAt: '2026-11-02T00:00:00Z', data: { q: 1, more: 2 } };
    expect(newestPerKey([api, hook])[0]).toBe(api);
    expect(newestPerKey([hook, api])[0]).toBe(api);
  });

  it('keeps ODK order (no replaces): updatedAt', () => {
    const a = s({ version: 'a', updatedAt: '2026-11-02T00:00:00Z' });
    const b = s({ version: 'b', updatedAt: '2026-11-01T00:00:00Z' });
    expect(newestPerKey([a, b])[0]).toBe(a);
    expect(newestPerKey([b, a])[0]).toBe(a);
  });
});
