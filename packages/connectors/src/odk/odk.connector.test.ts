import { afterEach, describe, expect, it } from 'vitest';
import { startOdkSimulator, type OdkSimulator, type OdkSimulatorOptions } from '@fieldsync/simulator';
import type { OdkSourceConfig } from '@fieldsync/config';
import type { CanonicalSubmission } from '@fieldsync/model';
import { storedIndexOf, type PullPage, type StoredVersion } from '../connector.ts';
import { OdkConnector } from './odk.connector.ts';
import { AuthError } from '../connector.ts';

const FORM = 'household_survey';
/** nextLinks point here, not at the simulator: the connector must re-home them. */
const DOMAIN = 'https://central.example.invalid';
let sim: OdkSimulator;

afterEach(async () => {
  await sim?.close();
});

async function start(o: OdkSimulatorOptions = {}) {
  sim = await startOdkSimulator({ domain: DOMAIN, ...o });
  return sim;
}

function connector(o: Partial<OdkSourceConfig> = {}): OdkConnector {
  const source: OdkSourceConfig = {
    id: 'odk-test',
    kind: 'odk',
    baseUrl: sim.url,
    projectId: 1,
    // These tests pin the exact boundary; the re-read window has its own test.
    overlapMs: 0,
    forms: [FORM],
    auth: { session: { email: sim.email, password: sim.password } },
    pageSize: 1000,
    batchSize: 500,
    poll: { every: 60_000 },
    sweep: { every: 3_600_000 },
    // Small waits so retries are quick; a Retry-After is still obeyed.
    http: { timeoutMs: 5_000, retries: 3, backoffMs: 10, maxBackoffMs: 3_000 },
    tables: { enabled: true, names: {}, choiceColumns: false },
    ...o,
  };
  return new OdkConnector(source);
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const subsOf = (pages: PullPage[]) => pages.flatMap((p) => p.submissions);
const keysOf = (subs: CanonicalSubmission[]) => subs.map((s) => s.key);
const feedRequests = () => sim.requests.filter((r) => r.path.endsWith('/Submissions'));

/** What the database would hold: latest observation per key. */
function remember(stored: Map<string, StoredVersion>, subs: CanonicalSubmission[]) {
  for (const s of subs)
    stored.set(s.key, { key: s.key, version: s.version, updatedAt: new Date(s.updatedAt), submittedAt: new Date(s.submittedAt), deleted: s.deleted });
}

describe('OdkConnector.pull', () => {
  it('walks 3,000 submissions in pages of 1,000; cursor only on the last page; a second pull re-reads only the cursor millisecond', async () => {
    await start({ submissions: 3000 });
    const c = connector();
    const pages = await collect(c.pull(FORM, null, { via: 'backfill' }));
    expect(pages.map((p) => p.submissions.length)).toEqual([1000, 1000, 1000]);
    expect(pages.map((p) => p.cursor !== undefined)).toEqual([false, false, true]);
    expect(pages[0]!.total).toBe(3000);
    const subs = subsOf(pages);
    expect(new Set(keysOf(subs)).size).toBe(3000);
    expect(keysOf(subs)).toEqual(sim.submissionIds(FORM));
    expect(subs.every((s) => s.via === 'backfill' && s.sourceId === 'odk-test' && s.formId === FORM && !s.deleted)).toBe(true);

    // The newest submission's time: seeded 1 ms apart, so exactly one row shares it.
    const newest = sim.row(FORM, sim.submissionIds(FORM)[0]!)!;
    const cursor = pages[2]!.cursor!;
    expect(cursor).toEqual({ since: (newest.__system as { submissionDate: string }).submissionDate });

    const requests = feedRequests();
    expect(requests).toHaveLength(3);
    for (const r of requests) {
      expect(r.query).toMatchObject({ $top: '1000', $count: 'true', $expand: '*' });
      expect(r.query.$orderby).toBeUndefined();
      expect(r.query.$filter).toBeUndefined();
    }

    sim.clearRequests();
    const again = await collect(c.pull(FORM, cursor, { via: 'poll' }));
    // The intentional overlap of `ge`: the row(s) stamped at the cursor's millisecond.
    expect(keysOf(subsOf(again))).toEqual([newest.__id]);
    expect(again.map((p) => p.cursor)).toEqual([undefined, cursor]);
    expect(feedRequests().map((r) => r.query.$filter)).toEqual([
      `__system/submissionDate ge ${cursor.since} or __system/updatedAt ge ${cursor.since}`,
      `__system/deletedAt ge ${cursor.since}`,
    ]);
  });

  it('returns, on the next pull, submissions created during a walk and every submission sharing the cursor millisecond', async () => {
    let now = Date.parse('2026-06-01T08:00:00.000Z');
    await start({ now: () => now });
    sim.seedSubmissions(FORM, 2500);
    const c = connector();

    const walk = c.pull(FORM, null, { via: 'backfill' })[Symbol.asyncIterator]();
    const first = await walk.next();
    expect(first.value!.submissions).toHaveLength(1000);
    now += 1000;
    const during = sim.createSubmission(FORM); // sorts before the keyset position: this walk cannot see it
    now += 1000;
    const onPage3 = sim.submissionIds(FORM).at(-1)!; // oldest: on the last page, not read yet
    sim.editSubmission(FORM, onPage3, { notes: 'edited mid-walk' }); // stamped after `during`
    const rest: PullPage[] = [];
    for (let r = await walk.next(); !r.done; r = await walk.next()) rest.push(r.value);
    const walked = [first.value!, ...rest];
    const keys = keysOf(subsOf(walked));
    expect(keys).not.toContain(during);
    expect(subsOf(walked).find((s) => s.key === onPage3)!.data).toMatchObject({ notes: 'edited mid-walk' });
    const cursor = walked.at(-1)!.cursor!;
    // The edit seen on page 3 must not raise the cursor past `during`.
    expect(Date.parse(cursor.since as string)).toBeLessThanOrEqual(now - 1000);

    const tied = [1, 2, 3].map(() => sim.createSubmission(FORM, { at: cursor.since as string }));
    const next = subsOf(await collect(c.pull(FORM, cursor, { via: 'poll' })));
    const nextKeys = keysOf(next);
    expect(nextKeys).toEqual(expect.arrayContaining([during, ...tied, onPage3]));
    expect(new Set(nextKeys).size).toBe(nextKeys.length);
  });

  it('overlapMs re-reads a submission that committed late with a stamp before the cursor', async () => {
    let now = Date.parse('2026-06-01T08:00:00.000Z');
    await start({ now: () => now });
    sim.seedSubmissions(FORM, 10);
    const pull = async (c: OdkConnector, cursor: PullPage['cursor'] | null) => collect(c.pull(FORM, cursor ?? null, { via: 'poll' }));
    const exact = connector();
    const windowed = connector({ overlapMs: 2_000 });
    const cursor = (await pull(exact, null)).at(-1)!.cursor!;
    now += 5_000;
    // Its transaction started 1.5 s before the cursor's time and committed only now.
    const late = sim.createSubmission(FORM, { at: Date.parse(cursor.since as string) - 1_500 });
    expect(keysOf(subsOf(await pull(exact, cursor)))).not.toContain(late);
    const again = await pull(windowed, cursor);
    expect(keysOf(subsOf(again))).toContain(late);
    expect(again.at(-1)!.cursor).toEqual(cursor); // the window never moves the cursor back
  });

  it('brings an edit (same key, new version and data) and a review-state change', async () => {
    let now = Date.parse('2026-06-01T08:00:00.000Z');
    await start({ now: () => now });
    sim.seedSubmissions(FORM, 5);
    const [edited, reviewed] = sim.submissionIds(FORM).slice(2);
    const c = connector();
    const cursor = (await collect(c.pull(FORM, null, { via: 'backfill' }))).at(-1)!.cursor!;

    now += 60_000;
    const v2 = sim.editSubmission(FORM, edited!, { household_size: 11, respondent: { name: 'Edited Name', age: 33, birth_date: '1993-02-01' } });
    now += 60_000;
    sim.setReviewState(FORM, reviewed!, 'approved');
    const subs = subsOf(await collect(c.pull(FORM, cursor, { via: 'poll' })));
    const e = subs.find((s) => s.key === edited)!;
    expect(e.version).toBe(v2);
    expect(e.version).not.toBe(edited);
    expect(e.updatedAt).toBe(new Date(now - 60_000).toISOString());
    expect(e.submittedAt).not.toBe(e.updatedAt);
    expect(e.data).toMatchObject({ household_size: 11, respondent: { name: 'Edited Name' }, __system: { reviewState: 'edited', edits: 1 }, meta: { instanceID: v2 } });
    const r = subs.find((s) => s.key === reviewed)!;
    expect(r.version).toBe(reviewed); // never edited: instanceID is still the first one
    expect(r.updatedAt).toBe(new Date(now).toISOString());
    expect(r.data).toMatchObject({ __system: { reviewState: 'approved', edits: 0 } });
  });

  it('turns a deletion into a tombstone; the cursor page comes last', async () => {
    let now = Date.parse('2026-06-01T08:00:00.000Z');
    await start({ now: () => now });
    sim.seedSubmissions(FORM, 10);
    const c = connector();
    const cursor = (await collect(c.pull(FORM, null, { via: 'backfill' }))).at(-1)!.cursor!;
    const victim = sim.submissionIds(FORM)[4]!;
    now += 5_000;
    sim.deleteSubmission(FORM, victim);
    const pages = await collect(c.pull(FORM, cursor, { via: 'poll' }));
    expect(pages.map((p) => p.cursor !== undefined)).toEqual([false, true]);
    const tomb = subsOf(pages).find((s) => s.key === victim)!;
    expect(tomb).toMatchObject({ deleted: true, deletedAt: new Date(now).toISOString(), version: victim, via: 'poll' });
    expect(tomb.data).toMatchObject({ __id: victim, __system: { deletedAt: new Date(now).toISOString() } });
    expect(pages.at(-1)!.cursor).toEqual(cursor);
  });

  it('keeps repeats with 0, 1 and 5 entries exactly as Central sent them', async () => {
    await start();
    const members = (n: number) => Array.from({ length: n }, (_, i) => ({ member_name: `Member ${i}`, member_age: 10 + i, member_sex: i % 2 ? 'male' : 'female' }));
    const ids = [0, 1, 5].map((n) => sim.createSubmission(FORM, { answers: n ? { member: members(n) } : { household_size: 1 } }));
    const subs = subsOf(await collect(connector().pull(FORM, null, { via: 'backfill' })));
    for (const [i, n] of [0, 1, 5].entries()) {
      const s = subs.find((x) => x.key === ids[i])!;
      expect(JSON.stringify(s.data)).toBe(JSON.stringify(sim.row(FORM, ids[i]!))); // same keys, same order
      if (n === 0) expect('member' in s.data).toBe(false);
      else expect((s.data.member as { member_name: string; __id: string }[]).map((m) => m.member_name)).toEqual(members(n).map((m) => m.member_name));
    }
  });
});

describe('OdkConnector.sweep', () => {
  it('finds restores, missed edits, deletions, purges and rows the filters missed', async () => {
    let now = Date.parse('2026-06-01T08:00:00.000Z');
    await start({ now: () => now });
    sim.seedSubmissions(FORM, 12);
    const c = connector({ pageSize: 5 });
    const stored = new Map<string, StoredVersion>();
    const first = await collect(c.pull(FORM, null, { via: 'backfill' }));
    remember(stored, subsOf(first));
    // Not the newest: that one is re-read by every poll (the cursor overlap).
    const [, restored, missedEdit, deleted, purged, , unknown] = sim.submissionIds(FORM);

    now += 1000;
    sim.deleteSubmission(FORM, restored!);
    const afterDelete = await collect(c.pull(FORM, first.at(-1)!.cursor!, { via: 'poll' }));
    remember(stored, subsOf(afterDelete));
    expect(stored.get(restored!)!.deleted).toBe(true);

    now += 1000;
    sim.restoreSubmission(FORM, restored!);
    // A restore changes no timestamp: the incremental pull cannot see it.
    const afterRestore = await collect(c.pull(FORM, afterDelete.at(-1)!.cursor!, { via: 'poll' }));
    expect(keysOf(subsOf(afterRestore))).not.toContain(restored);

    // Changes the polls never delivered:
    const v2 = sim.editSubmission(FORM, missedEdit!, { notes: 'edited behind our back' });
    sim.deleteSubmission(FORM, deleted!);
    sim.purgeSubmission(FORM, purged!); // (Central purges 30 days after a delete)
    stored.delete(unknown!);

    sim.clearRequests();
    const pages = await collect(c.sweep(FORM, storedIndexOf(stored, { chunk: 3 })));
    const subs = subsOf(pages as unknown as PullPage[]);
    expect(keysOf(subs).sort()).toEqual([restored, missedEdit, deleted, purged, unknown].sort());
    expect(subs.every((s) => s.via === 'sweep')).toBe(true);
    const by = new Map(subs.map((s) => [s.key, s]));
    expect(by.get(restored!)).toMatchObject({ deleted: false, version: restored });
    expect(by.get(restored!)!.data.__system).toMatchObject({ deletedAt: null });
    expect(by.get(missedEdit!)).toMatchObject({ deleted: false, version: v2, data: { notes: 'edited behind our back' } });
    expect(by.get(deleted!)).toMatchObject({ deleted: true, deletedAt: new Date(now).toISOString(), data: { __id: deleted } });
    expect(by.get(purged!)).toMatchObject({ deleted: true, version: stored.get(purged!)!.version, updatedAt: stored.get(purged!)!.updatedAt.toISOString(), data: {} });
    expect(by.get(unknown!)).toMatchObject({ deleted: false, key: unknown });
    expect(pages.at(-1)!.checked).toBe(11); // 10 live + 1 deleted; the purged one is nowhere
    expect(pages.at(-1)!.total).toBe(11);

    // The key scan is cheap: $select without $expand, paged.
    const scans = feedRequests().filter((r) => r.query.$select);
    expect(scans.length).toBeGreaterThanOrEqual(3);
    for (const r of scans) {
      expect(r.query.$select).toBe('__id,__system/updatedAt,__system/deletedAt');
      expect(r.query.$expand).toBeUndefined();
    }

    // Once stored, a second sweep has nothing to say.
    remember(stored, subs.filter((s) => s.key !== purged));
    stored.delete(purged!);
    expect(subsOf((await collect(c.sweep(FORM, storedIndexOf(stored)))) as unknown as PullPage[])).toEqual([]);
  });
});

describe('OdkConnector: auth, forms, faults', () => {
  it('logs in again exactly once when the session expires mid-walk, and finishes the walk', async () => {
    await start({ submissions: 3000 });
    const walk = connector().pull(FORM, null, { via: 'backfill' })[Symbol.asyncIterator]();
    const pages = [(await walk.next()).value!];
    sim.expireSessions();
    for (let r = await walk.next(); !r.done; r = await walk.next()) pages.push(r.value);
    expect(new Set(keysOf(subsOf(pages))).size).toBe(3000);
    expect(sim.requests.filter((r) => r.path === '/v1/sessions').length).toBe(2);
    expect(sim.requests.filter((r) => r.status === 401).length).toBe(1);
  });

  it('renews the session before it expires, without a 401', async () => {
    await start({ submissions: 3, sessionTtlMs: 1_000 });
    const c = connector();
    await collect(c.pull(FORM, null, { via: 'poll' }));
    await new Promise((r) => setTimeout(r, 1_000));
    await collect(c.pull(FORM, null, { via: 'poll' }));
    expect(sim.requests.filter((r) => r.path === '/v1/sessions').length).toBe(2);
    expect(sim.requests.filter((r) => r.status === 401)).toEqual([]);
  });

  it('uses Basic auth when configured (Central behind TLS) and reports 401.3 over plain HTTP', async () => {
    await start({ submissions: 2, secure: true });
    const basic = { auth: { basic: { email: sim.email, password: sim.password } } };
    expect(subsOf(await collect(connector(basic).pull(FORM, null, { via: 'poll' })))).toHaveLength(2);
    expect(sim.requests.every((r) => r.auth === 'basic' && r.path !== '/v1/sessions')).toBe(true);
    await sim.close();

    await start({ submissions: 2 });
    const err = await collect(connector({ auth: { basic: { email: sim.email, password: sim.password } } }).pull(FORM, null, { via: 'poll' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthError); // not retried by the poller until its next run
    expect(err).toMatchObject({ status: 401, code: 401.3, credential: 'auth.basic.email/password' });
    expect(sim.requests).toHaveLength(1); // no retry, no login attempt
  });

  it('reports a wrong password clearly', async () => {
    await start();
    const err = await collect(connector({ auth: { session: { email: sim.email, password: 'hunter2-not-it' } } }).pull(FORM, null, { via: 'poll' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuthError);
    expect((err as AuthError).message).toBe("ODK login refused: check the source's auth.session.email/password (401.2: Could not authenticate with the provided credentials.)");
    expect(sim.requests.map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual(['POST /v1/sessions 401']); // one login: a 401 is never retried
    // Nothing that a logger could serialize carries the credentials (got's error, with its headers and body, is dropped).
    expect((err as AuthError).cause).toBeUndefined();
    expect(JSON.stringify({ ...(err as object), message: (err as Error).message })).not.toContain('hunter2');
  });

  it("lists every published form of the project for '*', including forms published later", async () => {
    await start();
    const all = connector({ forms: '*' });
    expect(await all.listForms()).toEqual([FORM]);
    sim.publishForm({ xmlFormId: 'water_points', fields: [{ name: 'flow', type: 'decimal' }] }, { draft: true });
    expect(await all.listForms()).toEqual([FORM]); // a draft has no feed yet
    sim.publishForm({ xmlFormId: 'water_points', fields: [{ name: 'flow', type: 'decimal' }] });
    expect(await all.listForms()).toEqual([FORM, 'water_points']);
    sim.createSubmission('water_points', { answers: { flow: 1.5 } });
    expect(subsOf(await collect(all.pull('water_points', null, { via: 'poll' })))[0]!.data).toMatchObject({ flow: 1.5 });

    sim.clearRequests();
    expect(await connector({ forms: ['a', 'b'] }).listForms()).toEqual(['a', 'b']);
    expect(sim.requests).toEqual([]);
  });

  it('completes a pull through a 429 with Retry-After and a 503', async () => {
    await start({ submissions: 30 });
    sim.failNext({ status: 429, retryAfterS: 1, path: '/Submissions' }, { status: 503, path: '/Submissions' });
    const t0 = Date.now();
    const subs = subsOf(await collect(connector({ pageSize: 10 }).pull(FORM, null, { via: 'poll' })));
    expect(new Set(keysOf(subs)).size).toBe(30);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(950); // waited as told
    expect(feedRequests().map((r) => r.status)).toEqual([429, 503, 200, 200, 200]);
  });
});
