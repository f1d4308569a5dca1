import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig, type RestSourceConfig } from '@fieldsync/config';
import { startRestSimulator, type RestSimulator } from '@fieldsync/simulator';
import { RestConnector, restVersion } from './rest.connector.ts';
import { TypeInference } from './rest.infer.ts';
import { nextLink } from './rest.paths.ts';

type Obj = Record<string, unknown>;

describe('REST type inference', () => {
  it('infers from the first batch and only ever widens', () => {
    const inf = new TypeInference();
    inf.add([{ id: 1, at: '2026-11-01T08:00:00Z', day: '2026-11-01', ok: true, note: null, s: { q: 3 }, tags: ['a'] }]);
    const types = () => Object.fromEntries(inf.toFields().flatMap((f) => (f.children ? f.children.map((c) => [c.path.join('/'), c.type]) : [[f.name, f.type]])));
    expect(types()).toEqual({ id: 'integer', at: 'datetime', day: 'date', ok: 'boolean', 's/q': 'integer', tags: 'text' });
    const v1 = inf.version();
    inf.add([{ id: 2, s: { q: 7.5 }, note: 'hi' }]);
    expect(types()).toMatchObject({ id: 'integer', 's/q': 'decimal', note: 'text' });
    inf.add([{ s: { q: 'n/a' }, day: '2026-11-02T10:00:00Z' }, { s: { q: 4 } }]);
    expect(types()).toMatchObject({ 's/q': 'text', day: 'datetime' });
    expect(inf.version()).not.toBe(v1);
    // A stored definition seeds a new process: a narrower batch does not narrow it.
    const seeded = TypeInference.from(inf.definition('src', 'f', 'f'));
    seeded.add([{ id: 3, s: { q: 1 } }]);
    expect(seeded.version()).toBe(inf.version());
  });

  it('versions a record by content, whatever the key order', () => {
    expect(restVersion({ a: 1, b: { c: 2, d: 3 } })).toBe(restVersion({ b: { d: 3, c: 2 }, a: 1 }));
    expect(restVersion({ a: 1 })).not.toBe(restVersion({ a: 2 }));
  });

  it('reads rel="next" from a Link header', () => {
    const base = new URL('https://api.example.org/v1/items?page=1');
    expect(nextLink('<https://api.example.org/v1/items?page=2>; rel="next", <https://api.example.org/v1/items?page=9>; rel="last"', base)?.href).toBe('https://api.example.org/v1/items?page=2');
    expect(nextLink('</v1/items?page=3>; rel="prev next"', base)?.href).toBe('https://api.example.org/v1/items?page=3');
    expect(nextLink('<https://api.example.org/v1/items?page=1>; rel="prev"', base)).toBeUndefined();
  });
});

describe('REST connector against the simulator', () => {
  let sim: RestSimulator;
  beforeAll(async () => {
    sim = await startRestSimulator({ auth: 'none', conversations: 12 });
  });
  afterAll(() => sim?.close());
  const connector = (endpoint: Obj, extra: Obj = {}) =>
    new RestConnector(
      parseConfig(JSON.stringify({ sources: [{ id: 'api', kind: 'rest', baseUrl: sim.url, endpoints: [endpoint], http: { timeoutMs: 2000, retries: 0 }, ...extra }] }), 't.json', {}).sources[0] as RestSourceConfig,
    );
  const pull = async (c: RestConnector, form: string) => {
    const out: Obj[] = [];
    for await (const p of c.pull(form, null, { via: 'poll' })) out.push(...p.submissions.map((s) => s.data));
    return out;
  };

  it('refuses to send credentials to a next URL on another host', async () => {
    const c = connector({ name: 'x', path: '/api/next/conversations', recordsPath: 'results', key: 'id', paging: { style: 'next', nextPath: 'next', sizeParam: 'limit', size: 5 } });
    sim.authMode = 'none';
    const orig = sim.url;
    // The body's next URL names another origin (e.g. a misconfigured proxy): stop.
    sim.url = orig.replace('127.0.0.1', 'localhost');
    try {
      await expect(pull(c, 'x')).rejects.toThrow(/another host/);
    } finally {
      sim.url = orig;
    }
  });

  it('a transform that yields no objects fails with the endpoint named', async () => {
    const c = connector({ name: 'x', path: '/api/none/agents', recordsPath: 'data.items', key: 'id', transform: '$.name' });
    await expect(pull(c, 'x')).rejects.toThrow(/endpoint x: the transform must yield an array of objects/);
  });

  it('a record without its key field fails with the key named', async () => {
    const c = connector({ name: 'x', path: '/api/none/agents', recordsPath: 'data.items', key: 'uuid' });
    await expect(pull(c, 'x')).rejects.toThrow(/no usable key field "uuid".*endpoints\.x\.key/);
  });

  it('config errors name the key', () => {
    const bad = (endpoint: Obj, extra: Obj = {}) => () => parseConfig(JSON.stringify({ sources: [{ id: 'api', kind: 'rest', baseUrl: sim.url, endpoints: [endpoint], ...extra }] }), 't.json', {});
    expect(bad({ name: 'x', path: '/a', key: 'id', updatedParam: 'since' })).toThrow(/endpoints\[0\]\.updatedParam/);
    expect(bad({ name: 'x', path: '/a', key: 'id', paging: { style: 'cursor' } })).toThrow(/endpoints\[0\]\.paging\.nextPath/);
    expect(bad({ name: 'x', path: '/a', key: 'id' }, { auth: { login: { path: '/l', username: 'u', password: 'plain' } } })).toThrow(/sources\[0\]\.auth\.login\.password: secrets must come from the environment/);
  });
});
