/**
 * The generic REST source end to end, on both databases: the REST simulator
 * (every paging style, every auth style, a login whose token expires mid-run)
 * → RestConnector → poll runner → ingest queue → loader → raw and typed tables.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type RestSourceConfig } from '@fieldsync/config';
import type { Dialect } from '@fieldsync/db';
import { drained } from '@fieldsync/queues/testing';
import { AuthError, RestConnector } from '@fieldsync/connectors';
import { startRestSimulator, type RestAuthMode, type RestPagingStyle, type RestSimulator } from '@fieldsync/simulator';
import { TypedTables } from '@fieldsync/tables';
import { runPoll, type PollMode } from './poll.runner.ts';
import { syncSchedules } from './schedules.ts';
import { openHarness, testLog as log, type Harness } from './testing.ts';

type Obj = Record<string, unknown>;

const PAGING: Record<RestPagingStyle, Obj> = {
  page: { style: 'page', size: 7 },
  offset: { style: 'offset', size: 7 },
  cursor: { style: 'cursor', nextPath: 'meta.next_cursor', param: 'cursor', sizeParam: 'limit', size: 7 },
  link: { style: 'link', sizeParam: 'limit', size: 7 },
  next: { style: 'next', nextPath: 'next', sizeParam: 'limit', size: 7 },
  none: { style: 'none' },
};
const RECORDS_PATH: Record<RestPagingStyle, string> = { page: 'data.items', offset: 'data.items', cursor: 'data.items', link: '', next: 'results', none: 'data.items' };

describe.each<Dialect>(['postgresql', 'mysql'])('REST source on %s', (dialect) => {
  let h: Harness;
  let sim: RestSimulator;
  const pg = dialect === 'postgresql';
  const rel = (t: string) => (pg ? `"fieldsync"."${t}"` : `\`${t}\``);
  const q = (c: string) => (pg ? `"${c}"` : `\`${c}\``);
  const count = async (sql: string, params: unknown[] = []) => Number((await h.db.sql.query<{ n: number | string }>(sql, params))[0]!.n);
  const columns = async (table: string): Promise<Record<string, string>> => {
    const rows = await h.db.sql.query<{ c: string; t: string }>(
      pg
        ? `SELECT column_name AS c, data_type AS t FROM information_schema.columns WHERE table_schema = 'fieldsync' AND table_name = ?`
        : `SELECT column_name AS c, column_type AS t FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ?`,
      [table],
    );
    return Object.fromEntries(rows.map((r) => [r.c, r.t.toLowerCase()]));
  };
  const T = pg ? { int: 'bigint', num: 'numeric', text: 'text', ts: 'timestamp with time zone', bool: 'boolean' } : { int: 'bigint(20)', num: 'decimal(38,12)', text: 'mediumtext', ts: 'datetime(3)', bool: 'tinyint(1)' };

  /** A REST source on the simulator with these endpoints and this auth (credentials from the env, as users write them). */
  const connector = (endpoints: Obj[], auth: RestAuthMode | Obj = 'none'): RestConnector => {
    const a: Obj =
      typeof auth === 'object' ? auth
      : auth === 'none' ? { none: true }
      : auth === 'header' ? { header: { name: 'X-Api-Key', value: '${API_KEY}' } }
      : auth === 'bearer' ? { bearer: '${API_TOKEN}' }
      : auth === 'basic' ? { basic: { username: sim.username, password: '${API_PASSWORD}' } }
      : { login: { path: '/auth/login', username: sim.username, password: '${API_PASSWORD}', tokenPath: 'data.access_token', expiresInPath: 'data.expires_in' } };
    const cfg = parseConfig(
      JSON.stringify({ sources: [{ id: 'calls', kind: 'rest', baseUrl: sim.url, auth: a, endpoints, http: { timeoutMs: 5000, retries: 2, backoffMs: 20, maxBackoffMs: 200 } }] }),
      'test.json',
      { API_KEY: sim.apiKey, API_TOKEN: sim.staticToken, API_PASSWORD: sim.password },
    );
    return new RestConnector(cfg.sources[0] as RestSourceConfig, { logger: log });
  };
  const conversations = (name: string, style: RestPagingStyle, extra: Obj = {}): Obj => ({
    name, path: `/api/${style}/conversations`, recordsPath: RECORDS_PATH[style], key: 'id', paging: PAGING[style], ...extra,
  });
  const poll = async (c: RestConnector, formId: string, mode: PollMode) => {
    const s = await runPoll({ db: h.db, queues: h.queues, log, batchSize: 10 }, { connector: c, formId, mode });
    await drained(h.queues.ingest);
    return s;
  };
  const rows = (formId: string, deleted = false) => count(`SELECT COUNT(*) AS n FROM ${q('Submission')} WHERE ${q('sourceId')} = 'calls' AND ${q('formId')} = ? AND ${q('deleted')} = ?`, [formId, deleted]);

  beforeAll(async () => {
    h = await openHarness(dialect);
    h.startLoader({ tables: new TypedTables(dialect, { refreshMs: 0 }) });
    sim = await startRestSimulator({ conversations: 30 });
  });
  afterAll(async () => {
    await h?.close();
    await sim?.close();
  });

  // Each paging style under another auth style: together every one of each, end to end.
  it.each<[RestPagingStyle, RestAuthMode]>([
    ['page', 'none'], ['offset', 'header'], ['cursor', 'bearer'], ['link', 'basic'], ['next', 'login'], ['none', 'login'],
  ])('pages %s with %s auth: every record lands in the raw and the typed table', async (style, auth) => {
    sim.authMode = auth;
    const name = `conv_${style}`;
    const before = sim.requests.length;
    const s = await poll(connector([conversations(name, style)], auth), name, 'backfill');
    expect(s.fetched).toBe(30);
    expect(await rows(name)).toBe(30);
    expect(await count(`SELECT COUNT(*) AS n FROM ${rel(name)} WHERE ${q('_deleted')} = ?`, [false])).toBe(30);
    const pages = sim.requests.slice(before).filter((r) => r.path.startsWith('/api/'));
    expect(pages.every((r) => r.status === 200)).toBe(true);
    // 30 records at 7 a page: 5 pages (page/offset stop at the short one; no style reads past the end twice).
    expect(pages.length).toBe(style === 'none' ? 1 : 5);
    const cols = await columns(name);
    expect(cols).toMatchObject({ id: T.int, agent_id: T.int, started_at: T.ts, duration_s: T.int, resolved: T.bool, scores__quality: T.int, tags: T.text });
  });

  it('refused credentials fail the run as an auth error naming the key to fix', async () => {
    sim.authMode = 'basic';
    const c = connector([conversations('conv_refused', 'page')], { basic: { username: sim.username, password: '${API_KEY}' } });
    await expect(poll(c, 'conv_refused', 'backfill')).rejects.toBeInstanceOf(AuthError);
    const run = await h.db.prisma.syncRun.findFirst({ where: { sourceId: 'calls', formId: 'conv_refused' }, orderBy: { id: 'desc' } });
    expect(run).toMatchObject({ outcome: 'auth_failed' });
    expect(run?.error).toContain('auth.basic.username/password');
  });

  it.each([
    ['a 401 (the API does not say when tokens expire)', false],
    ['its expires_in, before the API refuses it', true],
  ])('a login token that expires mid-run is renewed after %s and the run completes', async (_, report) => {
    sim.authMode = 'login';
    sim.tokenTtlMs = 250;
    sim.reportExpiresIn = report;
    sim.delayMs = 40;
    const name = report ? 'conv_ttl_early' : 'conv_ttl_401';
    const c = connector([conversations(name, 'page', { paging: { style: 'page', size: 3 } })], 'login');
    const refusals = sim.expiredRefusals;
    try {
      const s = await poll(c, name, 'backfill');
      expect(s.fetched).toBe(30);
    } finally {
      sim.tokenTtlMs = 3_600_000;
      sim.delayMs = 0;
      sim.reportExpiresIn = true;
    }
    expect(await rows(name)).toBe(30);
    expect(c.logins).toBeGreaterThanOrEqual(2);
    if (report) expect(sim.expiredRefusals).toBe(refusals); // renewed ahead of time: never refused
    else expect(sim.expiredRefusals).toBeGreaterThan(refusals);
  });

  it('incremental data: a poll reads only what changed since the high-water mark; a wider type widens the table', async () => {
    sim.authMode = 'none';
    const name = 'conv_incr';
    const c = connector([conversations(name, 'offset', { updatedField: 'updated_at', updatedParam: 'updated_since' })]);
    const first = await poll(c, name, 'poll');
    expect(first.fetched).toBe(30);
    expect(first.cursor).toMatchObject({ high: expect.any(String) });
    const nothing = await poll(c, name, 'poll');
    expect(nothing.fetched).toBe(1); // the boundary record (updated_since is inclusive): a no-op re-delivery

    sim.edit('conversations', 1005, { scores: { quality: 7.5, sentiment: 1 } });
    sim.add('conversations', { id: 2001, agent_id: 2, started_at: '2026-11-02T10:00:00.000Z', duration_s: 30, resolved: true, scores: { quality: 3, sentiment: 0 }, tags: [] });
    const second = await poll(c, name, 'poll');
    expect(second.fetched).toBe(3); // the edit, the new one, and the boundary record again
    expect(await rows(name)).toBe(31);
    // integer → decimal: a new column holds every value; the integer one is never narrowed or retyped.
    const cols = await columns(name);
    expect(cols.scores__quality).toBe(T.int);
    expect(cols.scores__quality__numeric).toBe(T.num);
    const r = await h.db.sql.query<{ v: string | number }>(`SELECT ${q('scores__quality__numeric')} AS v FROM ${rel(name)} WHERE ${q('_key')} = '1005'`);
    expect(Number(r[0]!.v)).toBe(7.5);
    // Rows typed before the widening are rewritten with the new layout: the new column holds every value.
    expect(await count(`SELECT COUNT(*) AS n FROM ${rel(name)} WHERE ${q('scores__quality__numeric')} IS NOT NULL`)).toBe(31);
    const defs = await h.db.prisma.formSchema.count({ where: { sourceId: 'calls', formId: name } });
    expect(defs).toBe(2);
    // A new process (a fresh connector) whose first batch holds only integers starts from the stored types: nothing narrows.
    const fresh = connector([conversations(name, 'offset', { updatedField: 'updated_at', updatedParam: 'updated_since' })]);
    sim.edit('conversations', 2001, { duration_s: 31 });
    expect((await poll(fresh, name, 'poll')).fetched).toBe(1);
    expect(await h.db.prisma.formSchema.count({ where: { sourceId: 'calls', formId: name } })).toBe(2);
    expect((await columns(name)).scores__quality__numeric).toBe(T.num);
  });

  it('a dictionary re-read whole: a row removed at the source is marked deleted, composite keys hold', async () => {
    sim.authMode = 'none';
    const c = connector([
      { name: 'agents', kind: 'dictionary', path: '/api/none/agents', recordsPath: 'data.items', key: 'id' },
      { name: 'tags', kind: 'dictionary', path: '/api/cursor/tags', recordsPath: 'data.items', key: ['group', 'code'], paging: { style: 'cursor', nextPath: 'meta.next_cursor', sizeParam: 'limit', size: 2 } },
    ]);
    await poll(c, 'agents', 'poll');
    await poll(c, 'tags', 'poll');
    expect(await rows('agents')).toBe(6);
    expect(await rows('tags')).toBe(5);
    sim.remove('agents', 3);
    sim.remove('tags', 'mood/angry');
    sim.edit('agents', 2, { name: 'Agent Two' });
    const s = await poll(c, 'agents', 'sweep');
    await poll(c, 'tags', 'sweep');
    expect(s.enqueued).toBe(2); // the edit and the tombstone; unchanged rows are not re-sent
    expect(await rows('agents', true)).toBe(1);
    expect(await rows('tags', true)).toBe(1);
    const gone = await h.db.sql.query<{ k: string; d: unknown }>(`SELECT ${q('_key')} AS k, ${q('_deleted')} AS d FROM ${rel('agents')} WHERE ${q('_deleted')} = ?`, [true]);
    expect(gone.map((g) => g.k)).toEqual(['3']);
    const tag = await h.db.sql.query<{ k: string }>(`SELECT ${q('_key')} AS k FROM ${rel('tags')} WHERE ${q('_deleted')} = ?`, [true]);
    expect(tag.map((g) => g.k)).toEqual(['mood/angry']);
    const named = await h.db.sql.query<{ n: string }>(`SELECT ${q('name')} AS n FROM ${rel('agents')} WHERE ${q('_key')} = '2'`);
    expect(named[0]!.n).toBe('Agent Two');
  });

  it('schedules dictionaries on their own, slower schedule and data endpoints on the source\'s', async () => {
    const cfg = parseConfig(
      JSON.stringify({
        sources: [{
          id: 'calls', kind: 'rest', baseUrl: sim.url, poll: { every: '5m' }, sweep: { every: '1h' }, dictionarySchedule: { every: '1d' },
          endpoints: [{ name: 'agents', kind: 'dictionary', path: '/api/none/agents', recordsPath: 'data.items', key: 'id' }, conversations('conversations', 'page')],
        }],
      }),
      'test.json',
      {},
    );
    await syncSchedules(h.queues.poll, cfg);
    const every = Object.fromEntries((await h.queues.poll.getJobSchedulers(0, -1)).map((s) => [s.key, Number(s.every)]));
    expect(every).toEqual({ 'poll:calls:agents': 86_400_000, 'sweep:calls:agents': 86_400_000, 'poll:calls:conversations': 300_000, 'sweep:calls:conversations': 3_600_000 });
    for (const k of Object.keys(every)) await h.queues.poll.removeJobScheduler(k);
  });

  it('a JSONata transform reshapes each page before loading', async () => {
    sim.authMode = 'none';
    const name = 'conv_shaped';
    const c = connector([
      conversations(name, 'page', {
        transform: '$.{ "id": id, "agent": "agent-" & $string(agent_id), "minutes": $round(duration_s / 60, 2), "quality": scores.quality }',
      }),
    ]);
    await poll(c, name, 'backfill');
    expect(await rows(name)).toBe(sim.list('conversations').length);
    const cols = await columns(name);
    expect(Object.keys(cols).filter((k) => !k.startsWith('_')).sort()).toEqual(['agent', 'id', 'minutes', 'quality']);
    const r = await h.db.sql.query<{ a: string; m: string | number }>(`SELECT ${q('agent')} AS a, ${q('minutes')} AS m FROM ${rel(name)} WHERE ${q('_key')} = '1001'`);
    const src = sim.list('conversations').find((x) => x.id === 1001)!;
    expect(r[0]!.a).toBe(`agent-${String(src.agent_id)}`);
    expect(Number(r[0]!.m)).toBeCloseTo(Number(src.duration_s) / 60, 2);
  });
});
