import { afterEach, describe, expect, it } from 'vitest';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KoboSource, type KoboSourceConfig } from '@fieldsync/config';
import { CanonicalSubmission } from '@fieldsync/model';
import { startKoboSimulator, type KoboSimulator, type KoboSimulatorOptions } from '@fieldsync/simulator';
import { storedIndexOf, type PullPage, type StoredVersion, type SweepPage } from '../connector.ts';
import { IdSet, KoboConnector } from './kobo.connector.ts';

let sim: KoboSimulator | undefined;
afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

async function setup(o: KoboSimulatorOptions = {}, source: Omit<Partial<KoboSourceConfig>, 'overlap'> & { overlap?: string } = {}) {
  sim = await startKoboSimulator({ startTime: new Date('2026-06-01T08:00:00Z'), ...o });
  const uid = sim.assetUids[0]!;
  const config = KoboSource.parse({
    kind: 'kobo',
    id: 'kobo-test',
    baseUrl: sim.url,
    token: sim.token,
    forms: [uid],
    pageSize: 1000,
    // Small waits so retries finish fast; maxBackoffMs must exceed a Retry-After or got gives up.
    http: { timeoutMs: 5000, retries: 3, backoffMs: 20, maxBackoffMs: 2000 },
    ...source,
  });
  return { sim, uid, kobo: new KoboConnector(config, {}) };
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const dataRequests = () => sim!.requests.filter((r) => r.path.endsWith('/data/'));
const stored = (subs: CanonicalSubmission[]): Map<string, StoredVersion> =>
  new Map(subs.map((s) => [s.key, { key: s.key, version: s.version, updatedAt: new Date(s.updatedAt), submittedAt: new Date(s.submittedAt), deleted: s.deleted }]));

describe('KoboConnector.pull', () => {
  it('reads 2,500 records in keyset pages of 1,000 into canonical submissions', async () => {
    const { uid, kobo } = await setup({ submissions: 2500 });
    const pages = await collect(kobo.pull(uid, null, { via: 'backfill' }));
    expect(pages.map((p) => p.submissions.length)).toEqual([1000, 1000, 500]);
    expect(pages.map((p) => p.total)).toEqual([2500, 2500, 2500]);
    expect(pages.map((p) => p.cursor)).toEqual([1000, 2000, 2500].map((id) => ({ lastId: id, lastTime: sim!.record(uid, id)!._submission_time })));

    const subs = pages.flatMap((p) => p.submissions);
    const records = new Map(sim!.records(uid).map((r) => [String(r._id), r]));
    expect(new Set(subs.map((s) => s.key)).size).toBe(2500);
    for (const s of subs) {
      const r = records.get(s.key)!;
      expect(() => CanonicalSubmission.parse(s)).not.toThrow();
      expect(s).toMatchObject({ sourceId: 'kobo-test', formId: uid, version: r['meta/instanceID'], deleted: false, via: 'backfill' });
      expect(s.submittedAt).toBe(`${r._submission_time}.000Z`);
      expect(s.updatedAt).toBe(s.submittedAt); // never edited
      expect(s.data).toEqual(r);
    }
    // Keyset, never offsets: each request asks for _id above the previous page's last one, as a JSON number.
    expect(dataRequests().map((r) => [r.query.query, r.query.sort, r.query.limit, r.query.start])).toEqual([
      ['{"_id":{"$gt":0}}', '{"_id":1}', '1000', undefined],
      ['{"_id":{"$gt":1000}}', '{"_id":1}', '1000', undefined],
      ['{"_id":{"$gt":2000}}', '{"_id":1}', '1000', undefined],
    ]);
  });

  it('asks for at most 1,000 per page whatever pageSize says', async () => {
    const { uid, kobo } = await setup({ submissions: 1200 }, { pageSize: 5000 });
    const pages = await collect(kobo.pull(uid, null, { via: 'poll' }));
    expect(pages.map((p) => p.submissions.length)).toEqual([1000, 200]);
    expect(dataRequests().map((r) => r.query.limit)).toEqual(['1000', '1000']);
  });

  it('continues from the cursor with a time window, and never moves the cursor back', async () => {
    const { uid, kobo } = await setup({ submissions: 2500 }, { overlap: '10m' });
    const time = (id: number) => String(sim!.record(uid, id)!._submission_time);
    const first = await collect(kobo.pull(uid, null, { via: 'poll' }));
    const cursor = first.at(-1)!.cursor!;
    expect(cursor).toEqual({ lastId: 2500, lastTime: time(2500) });

    sim!.createSubmissions(uid, 30);
    sim!.clearRequests();
    const second = await collect(kobo.pull(uid, cursor, { via: 'poll' }));
    const since = new Date(Date.parse(`${time(2500)}Z`) - 600_000).toISOString().slice(0, 19);
    const inWindow = sim!.records(uid).filter((r) => r._id <= 2500 && String(r._submission_time) >= since).map((r) => r._id);
    expect(inWindow.length).toBeGreaterThan(0); // records arrive 5-300 s apart
    const keys = second.flatMap((p) => p.submissions.map((s) => Number(s.key)));
    expect(keys).toEqual([...inWindow, ...Array.from({ length: 30 }, (_, i) => 2501 + i)]); // the window + the new ones, in _id order
    expect(second.at(-1)!.cursor).toEqual({ lastId: 2530, lastTime: time(2530) });
    expect(dataRequests()[0]!.query.query).toBe(`{"_id":{"$gt":0},"$or":[{"_id":{"$gt":2500}},{"_submission_time":{"$gte":"${since}"}}]}`);

    // Nothing new: only the window, and the cursor stays put.
    const third = await collect(kobo.pull(uid, second.at(-1)!.cursor!, { via: 'poll' }));
    expect(third.flatMap((p) => p.submissions).length).toBeGreaterThan(0);
    expect(third.flatMap((p) => p.submissions).every((s) => s.submittedAt >= new Date(Date.parse(`${time(2530)}Z`) - 600_000).toISOString())).toBe(true);
    expect(third.at(-1)!.cursor).toEqual({ lastId: 2530, lastTime: time(2530) });
  });

  it('reads a cursor from before the time window (no lastTime): 100 ids below it, once', async () => {
    const { uid, kobo } = await setup({ submissions: 300 });
    const pages = await collect(kobo.pull(uid, { lastId: 250 }, { via: 'poll' }));
    expect(dataRequests()[0]!.query.query).toBe('{"_id":{"$gt":150}}');
    expect(pages.flatMap((p) => p.submissions)).toHaveLength(150);
    expect(pages.at(-1)!.cursor).toEqual({ lastId: 300, lastTime: String(sim!.record(uid, 300)!._submission_time) });
    await expect(collect(kobo.pull(uid, { lastId: 1, lastTime: 'yesterday' }, { via: 'poll' }))).rejects.toThrow(/invalid Kobo cursor.*lastTime/);
  });

  it('picks up a smaller _id that became visible late, within the time window though far more than 100 ids below', async () => {
    const { uid, kobo } = await setup({ submissions: 5 }, { overlap: '5m' });
    const [late] = sim!.createSubmissions(uid, 1, { hidden: true });
    sim!.createSubmissions(uid, 150, { everyS: 1 }); // a busy server: 150 ids in 150 s
    const first = await collect(kobo.pull(uid, null, { via: 'poll' }));
    const cursor = first.at(-1)!.cursor!;
    expect(first.flatMap((p) => p.submissions.map((s) => s.key))).not.toContain(String(late!._id));
    expect(late!._id).toBeLessThan(Number(cursor.lastId) - 100); // an id window of 100 would miss it
    sim!.reveal(uid);
    const second = await collect(kobo.pull(uid, cursor, { via: 'poll' }));
    expect(second.flatMap((p) => p.submissions.map((s) => s.key))).toContain(String(late!._id));
    expect(second.at(-1)!.cursor).toEqual(cursor);
  });

  it('yields one empty page with the unchanged cursor when there is nothing', async () => {
    const { uid, kobo } = await setup({}, { overlap: '0' });
    const pages = await collect(kobo.pull(uid, { lastId: 42 }, { via: 'poll' }));
    expect(pages).toEqual([{ submissions: [], cursor: { lastId: 42 }, total: 0 }]);
  });

  it('survives a 429 with Retry-After and a 500, and still reads everything', async () => {
    const { uid, kobo } = await setup({ submissions: 2500 });
    sim!.clearRequests();
    sim!.failNext({ status: 429, retryAfterS: 1 }, { status: 500 });
    const t0 = Date.now();
    const pages = await collect(kobo.pull(uid, null, { via: 'poll' }));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900); // Retry-After was honoured
    expect(new Set(pages.flatMap((p) => p.submissions.map((s) => s.key))).size).toBe(2500);
    expect(pages.at(-1)!.cursor).toMatchObject({ lastId: 2500 });
    expect(sim!.requests.map((r) => r.status)).toEqual([429, 500, 200, 200, 200]);
  });

  it('never follows the host in next (a server behind a proxy)', async () => {
    const { uid, kobo } = await setup({ submissions: 25, publicUrl: 'http://kobo.invalid:9' }, { pageSize: 10 });
    const pages = await collect(kobo.pull(uid, null, { via: 'poll' }));
    expect(pages.flatMap((p) => p.submissions)).toHaveLength(25);
    expect(pages.at(-1)!.cursor).toMatchObject({ lastId: 25 });
  });

  it('fails clearly on a bad token and on a bad cursor', async () => {
    const { uid } = await setup({ submissions: 1 });
    const bad = new KoboConnector(KoboSource.parse({ kind: 'kobo', id: 'k', baseUrl: sim!.url, token: 'wrong', forms: [uid] }));
    await expect(collect(bad.pull(uid, null, { via: 'poll' }))).rejects.toThrow(/^Kobo token refused: check the source's token .*\(401: .*Invalid token/);
    await expect(collect(bad.pull(uid, { lastId: 'x' }, { via: 'poll' }))).rejects.toThrow(/invalid Kobo cursor/);
  });

  it('names the path and shows the start of an answer that is not JSON (a proxy page with status 200)', async () => {
    const proxy = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html><body>Please sign in</body></html>'));
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const { port } = proxy.address() as AddressInfo;
      const kobo = new KoboConnector(KoboSource.parse({ kind: 'kobo', id: 'k', baseUrl: `http://127.0.0.1:${port}`, token: 't', forms: ['aF'] }));
      await expect(collect(kobo.pull('aF', null, { via: 'poll' }))).rejects.toThrow('the answer from /api/v2/assets/aF/data/ is not JSON: "<html><body>Please sign in');
    } finally {
      await new Promise((r) => proxy.close(r));
    }
  });
});

describe('IdSet (the _ids a sweep saw)', () => {
  it('answers membership whatever the order of adding, past its first capacity', () => {
    const ids = new IdSet();
    const added = [5, 3, 2_000_000_001, 3, 0, ...Array.from({ length: 3000 }, (_, i) => 10 + i * 2)];
    for (const n of added) ids.add(n);
    expect(added.every((n) => ids.has(n))).toBe(true);
    expect([1, 4, 11, 6009, 2_000_000_000].some((n) => ids.has(n))).toBe(false);
    ids.add(1); // an add after a lookup is seen too
    expect(ids.has(1)).toBe(true);
  });
});

describe('KoboConnector.sweep', () => {
  it('re-fetches edits, missing and wrongly-deleted records, and tombstones deletions', async () => {
    const { uid, kobo } = await setup({ submissions: 45 }, { pageSize: 20 });
    const loaded = (await collect(kobo.pull(uid, null, { via: 'backfill' }))).flatMap((p) => p.submissions);
    const db = stored(loaded);
    const original5 = db.get('5')!;

    const edited = sim!.editSubmission(uid, 5);
    sim!.deleteSubmission(uid, 7);
    db.delete('9'); // a missed webhook below the cursor
    db.set('11', { ...db.get('11')!, deleted: true }); // a wrong tombstone
    db.set('uuid:webhook-subset-row', { ...db.get('12')!, key: 'uuid:webhook-subset-row' }); // not an _id key, and gone
    const root13 = String(sim!.record(uid, 13)!['meta/rootUuid']);
    db.set(root13, { ...db.get('13')!, key: root13 }); // keyed by rootUuid (a subset webhook): still there

    sim!.clearRequests();
    const t0 = Date.now();
    // Tombstones come from chunks of what we hold: several here.
    const pages: SweepPage[] = await collect(kobo.sweep(uid, storedIndexOf(db, { chunk: 7 })));
    const subs = pages.flatMap((p) => p.submissions);
    expect(subs.map((s) => [s.key, s.deleted]).sort()).toEqual([
      ['11', false],
      ['5', false],
      ['7', true],
      ['9', false],
      ['uuid:webhook-subset-row', true],
    ]);
    for (const s of subs) expect(() => CanonicalSubmission.parse(s)).not.toThrow();
    expect(subs.every((s) => s.via === 'sweep')).toBe(true);

    const e = subs.find((s) => s.key === '5')!;
    expect(e.version).toBe(edited['meta/instanceID']);
    expect(e.version).not.toBe(original5.version);
    expect(e.submittedAt).toBe(original5.submittedAt.toISOString());
    expect(Date.parse(e.updatedAt)).toBeGreaterThan(original5.updatedAt.getTime());
    expect(Date.parse(e.updatedAt)).toBeGreaterThanOrEqual(t0);
    expect(e.data['meta/deprecatedID']).toBe(original5.version);
    expect(e.replaces).toBe(original5.version); // the lineage that orders it against the original

    const t = subs.find((s) => s.key === '7')!;
    const was7 = db.get('7')!;
    expect(t).toMatchObject({ deleted: true, version: was7.version, updatedAt: was7.updatedAt.toISOString(), submittedAt: was7.submittedAt.toISOString(), data: {} });
    expect(t.deletedAt).toBe(t.observedAt);

    expect(pages.at(-1)).toMatchObject({ checked: 44, total: 44 });
    // Key pages ask only for _id and instanceID; re-fetches are by $in.
    const reqs = dataRequests();
    expect(reqs.filter((r) => r.query.fields === '["_id","meta/instanceID","_validation_status"]')).toHaveLength(3);
    expect(reqs.filter((r) => r.query.query?.includes('$in')).map((r) => JSON.parse(r.query.query!)._id.$in)).toEqual([[5, 9, 11]]);
  });

  it('gathers edits spread over the walk into one re-fetch, not one per page', async () => {
    const { uid, kobo } = await setup({ submissions: 45 }, { pageSize: 20 });
    const loaded = (await collect(kobo.pull(uid, null, { via: 'backfill' }))).flatMap((p) => p.submissions);
    for (const id of [3, 25, 41]) sim!.editSubmission(uid, id); // one on each page of the walk
    sim!.clearRequests();
    const subs = (await collect(kobo.sweep(uid, storedIndexOf(stored(loaded))))).flatMap((p) => p.submissions);
    expect(subs.map((s) => s.key).sort()).toEqual(['25', '3', '41']);
    expect(dataRequests().filter((r) => r.query.query?.includes('$in')).map((r) => JSON.parse(r.query.query!)._id.$in)).toEqual([[3, 25, 41]]);
  });

  it('finds nothing when the store matches the source', async () => {
    const { uid, kobo } = await setup({ submissions: 30 });
    const loaded = (await collect(kobo.pull(uid, null, { via: 'backfill' }))).flatMap((p) => p.submissions);
    const pages = await collect(kobo.sweep(uid, storedIndexOf(stored(loaded))));
    expect(pages.flatMap((p) => p.submissions)).toEqual([]);
    expect(pages.at(-1)).toMatchObject({ checked: 30, total: 30 });
  });

  it('re-fetches a record whose validation status changed (same version), when the store says what it holds', async () => {
    const { uid, kobo } = await setup({ submissions: 30 });
    const loaded = (await collect(kobo.pull(uid, null, { via: 'backfill' }))).flatMap((p) => p.submissions);
    const probe = (s: CanonicalSubmission) => ((s.data._validation_status as { uid?: string } | undefined)?.uid ?? null);
    const held = new Map([...stored(loaded)].map(([k, v]) => [k, { ...v, probe: probe(loaded.find((s) => s.key === k)!) }]));
    expect((await collect(kobo.sweep(uid, storedIndexOf(held)))).flatMap((p) => p.submissions)).toEqual([]);

    const target = loaded.find((s) => probe(s) === null)!;
    sim!.validateSubmission(uid, Number(target.key), 'validation_status_on_hold');
    const t0 = Date.now();
    const subs = (await collect(kobo.sweep(uid, storedIndexOf(held)))).flatMap((p) => p.submissions);
    expect(subs.map((s) => s.key)).toEqual([target.key]);
    expect(subs[0]!.version).toBe(target.version);
    expect(subs[0]!.data._validation_status).toMatchObject({ uid: 'validation_status_on_hold' });
    // Newer than the stored copy, so the upsert takes it.
    expect(Date.parse(subs[0]!.updatedAt)).toBeGreaterThanOrEqual(t0);
  });

  it('re-fetches in chunks of at most 200 ids', async () => {
    const { uid, kobo } = await setup({ submissions: 450 });
    const pages = await collect(kobo.sweep(uid, storedIndexOf(new Map())));
    expect(pages.flatMap((p) => p.submissions)).toHaveLength(450);
    expect(dataRequests().filter((r) => r.query.query?.includes('$in')).map((r) => JSON.parse(r.query.query!)._id.$in.length)).toEqual([200, 200, 50]);
  });

  it('emits no tombstone when the key walk fails part-way', async () => {
    const { uid, kobo } = await setup({ submissions: 30 }, { pageSize: 10, http: { timeoutMs: 2000, retries: 0, backoffMs: 10, maxBackoffMs: 100 } });
    const db = stored((await collect(kobo.pull(uid, null, { via: 'poll' }))).flatMap((p) => p.submissions));
    db.set('999', { ...db.get('1')!, key: '999' });
    const seen: PullPage['submissions'] = [];
    sim!.failNext({ delayMs: 0 }, { status: 500 }); // the 2nd key page fails
    await expect(
      (async () => {
        for await (const p of kobo.sweep(uid, storedIndexOf(db))) seen.push(...p.submissions);
      })(),
    ).rejects.toThrow(/HTTP 500/);
    expect(seen.filter((s) => s.deleted)).toEqual([]);
  });
});
