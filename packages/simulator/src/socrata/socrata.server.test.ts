import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PET_DATASET, startSocrataSimulator, type SocrataSimulator } from './index.ts';

describe('Socrata simulator', () => {
  let sim: SocrataSimulator;
  beforeAll(async () => {
    sim = await startSocrataSimulator({
      pets: 51_754,
      datasets: [{ id: 'abcd-1234', columns: [{ id: 1, fieldName: 'n', name: 'N', dataTypeName: 'number' }, { id: 2, fieldName: 'who', name: 'Who', dataTypeName: 'text' }], rows: [{ n: '5', who: "O'Brien" }, { n: '40' }] }],
    });
  });
  afterAll(() => sim?.close());

  const get = async (path: string, params: Record<string, string> = {}, headers: Record<string, string> = {}) => {
    const res = await fetch(`${sim.url}${path}?${new URLSearchParams(params)}`, { headers });
    return { status: res.status, headers: res.headers, body: res.status === 200 ? ((await res.json()) as Record<string, unknown>[]) : [] };
  };
  const pets = (params: Record<string, string>, headers?: Record<string, string>) => get(`/resource/${PET_DATASET}.json`, params, headers);

  it('holds 51,754 pet-license rows; system fields only with $select=:*,*; the default page is 1,000', async () => {
    expect(sim.dataset(PET_DATASET).rows.size).toBe(51_754);
    const plain = await pets({});
    expect(plain.body).toHaveLength(1000);
    expect(Object.keys(plain.body[0]!).some((k) => k.startsWith(':id'))).toBe(false);
    const sys = await pets({ $select: ':*,*', $limit: '1' });
    expect(sys.body[0]).toMatchObject({ ':id': expect.stringMatching(/^row-/), ':updated_at': expect.stringMatching(/Z$/), ':version': expect.any(String), species: expect.any(String) });
    // Sparse rows: some have no secondary breed key at all.
    expect((await pets({ $limit: '200' })).body.some((r) => !('secondary_breed' in r))).toBe(true);
  });

  it('keyset pages on :id, compares timestamps as instants and text with doubled quotes, numbers arrive as strings', async () => {
    const first = await pets({ $select: ':id', $order: ':id', $limit: '3' });
    const ids = first.body.map((r) => r[':id'] as string);
    expect([...ids].sort()).toEqual(ids);
    const next = await pets({ $select: ':id', $order: ':id', $limit: '2', $where: `:id > '${ids[1]}'` });
    expect(next.body[0]![':id']).toBe(ids[2]);
    const recent = await pets({ $select: ':*,*', $where: ":updated_at >= '2024-12-01T00:00:00' AND species = 'Cat'", $limit: '50000' });
    expect(recent.body.length).toBeGreaterThan(0);
    expect(recent.body.every((r) => r.species === 'Cat' && Date.parse(r[':updated_at'] as string) >= Date.parse('2024-12-01T00:00:00Z'))).toBe(true);
    const other = await get('/resource/abcd-1234.json', { $where: "who = 'O''Brien'" });
    expect(other.body).toEqual([{ n: '5', who: "O'Brien" }]);
    expect((await get('/resource/abcd-1234.json', { $where: 'n > 10' })).body).toEqual([{ n: '40' }]);
    expect((await pets({ $where: 'nope > 1' })).status).toBe(400);
  });

  it('answers 304 to a matching ETag or Last-Modified until the data changes', async () => {
    const q = { $select: ':id', $order: ':id', $limit: '1' };
    const a = await pets(q);
    const etag = a.headers.get('etag')!;
    expect((await pets(q, { 'if-none-match': etag })).status).toBe(304);
    expect((await pets(q, { 'if-modified-since': a.headers.get('last-modified')! })).status).toBe(304);
    const ds = sim.dataset(PET_DATASET);
    ds.edit(ds.byId()[0]![':id'] as string, { zip_code: '98101' });
    expect((await pets(q, { 'if-none-match': etag })).status).toBe(200);
  });

  it('throttles with 429 and no Retry-After every Nth request, and answers 202 while "computing"', async () => {
    sim.state.throttleEvery = 2;
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push(await pets({ $limit: '1' }));
    sim.state.throttleEvery = 0;
    expect(statuses.filter((s) => s.status === 429)).toHaveLength(2);
    expect(statuses.find((s) => s.status === 429)!.headers.get('retry-after')).toBeNull();
    sim.state.computing = 1;
    expect((await pets({ $limit: '1' })).status).toBe(202);
    expect((await pets({ $limit: '1' })).status).toBe(200);
  });

  it('serves /api/views metadata with the columns', async () => {
    const res = await fetch(`${sim.url}/api/views/${PET_DATASET}.json`);
    const view = (await res.json()) as { columns: { fieldName: string; dataTypeName: string }[] };
    expect(view.columns.find((c) => c.fieldName === 'license_issue_date')?.dataTypeName).toBe('calendar_date');
    expect(view.columns.map((c) => c.fieldName)).toContain('zip_code');
  });
});
