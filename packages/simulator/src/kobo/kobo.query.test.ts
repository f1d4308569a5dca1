import { describe, expect, it } from 'vitest';
import { matches, selectDocs, sortDocs } from './kobo.query.ts';

describe('selectDocs', () => {
  // Sorted by _id, with gaps, as the store keeps them.
  const docs = Array.from({ length: 300 }, (_, i) => ({ _id: i * 3 + 1, t: `2026-11-${String((i % 28) + 1).padStart(2, '0')}`, v: i % 7 }));
  const reference = (filter: Record<string, unknown>, sort: [string, 1 | -1][] = [['_id', 1]]) => sortDocs(docs.filter((d) => matches(d, filter)), sort);

  it.each([
    ['a keyset page', { _id: { $gt: 100 } }],
    ['a keyset page past the end', { _id: { $gt: 10_000 } }],
    ['a keyset page below the first id', { _id: { $gt: -5 } }],
    ['a keyset page on an id that exists', { _id: { $gt: 301 } }],
    ['a re-fetch by $in', { _id: { $gt: 0, $in: [898, 4, 7, 601, 602, 4, 5000] } }],
    ['a re-fetch by $in above a keyset point', { _id: { $gt: 600, $in: [4, 7, 601, 602, 898] } }],
    ['a poll with the late-record window ($or)', { _id: { $gt: 0 }, $or: [{ _id: { $gt: 700 } }, { t: { $gte: '2026-11-27' } }] }],
    ['another field (no keyset)', { v: 3 }],
    ['$gte (no keyset)', { _id: { $gte: 301 } }],
  ])('answers %s exactly as testing every document does', (_name, filter) => {
    const got = selectDocs(docs, filter, [['_id', 1]]);
    expect(got.map((d) => d._id)).toEqual(reference(filter).map((d) => d._id));
  });

  it('keeps another sort order', () => {
    const filter = { _id: { $gt: 100 } };
    expect(selectDocs(docs, filter, [['_id', -1]]).map((d) => d._id)).toEqual(reference(filter, [['_id', -1]]).map((d) => d._id));
  });

  it('never hands out the sorted list itself (callers may not change the store)', () => {
    expect(selectDocs(docs, { _id: { $gt: -1 } }, [['_id', 1]])).not.toBe(docs);
  });
});
