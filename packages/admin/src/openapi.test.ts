/** The OpenAPI document is valid OpenAPI 3.1 and describes every route the admin API serves. */
import { describe, expect, it } from 'vitest';
import express from 'express';
import request from 'supertest';
import { Validator } from '@seriousme/openapi-schema-validator';
import { parseConfig } from '@fieldsync/config';
import { createQueues, createRedis } from '@fieldsync/queues';
import { testQueueSettings } from '@fieldsync/queues/testing';
import { testLog as log } from '@fieldsync/sync/testing';
import { createApiRouter } from './api.ts';
import { createAdminRouter } from './admin.ts';
import { openApiDocument } from './openapi.ts';

const config = parseConfig(JSON.stringify({ sources: [{ id: 'k', kind: 'kobo', baseUrl: 'http://127.0.0.1:1', token: '${T}', forms: ['a'] }] }), 'test.json', { T: 't' });

type Layer = { route?: { path: string; methods: Record<string, boolean> }; name: string; handle: { stack?: Layer[] } };

/** Method + OpenAPI path of every route a router serves (`:id` → `{id}`). */
function routesOf(router: express.Router, prefix: string): string[] {
  return (router.stack as unknown as Layer[]).flatMap((l) =>
    l.route ? Object.keys(l.route.methods).map((m) => `${m.toUpperCase()} ${prefix}${l.route!.path.replace(/:(\w+)/g, '{$1}')}`) : [],
  );
}

describe('OpenAPI document', () => {
  const doc = openApiDocument() as { openapi: string; paths: Record<string, Record<string, unknown>> };
  const documented = new Set(Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)));

  it('validates as OpenAPI 3.1', async () => {
    const v = new Validator();
    const res = await v.validate(structuredClone(doc));
    expect(res.errors ?? []).toEqual([]);
    expect(res.valid).toBe(true);
    expect(doc.openapi).toBe('3.1.0');
    // The validator is not vacuous: a response without its required description fails.
    const broken = structuredClone(doc) as { paths: Record<string, Record<string, { responses: Record<string, { description?: string }> }>> };
    delete broken.paths['/admin/api/status']!.get!.responses['200']!.description;
    expect((await new Validator().validate(broken)).valid).toBe(false);
  });

  it('has every route of the admin API router, and the webhook endpoint', () => {
    const redis = createRedis('redis://127.0.0.1:6379', 'producer', { lazyConnect: true });
    const queues = createQueues(testQueueSettings(), redis, () => {});
    const api = createApiRouter({ config, queues, log, db: () => { throw new Error('unused'); } });
    const served = routesOf(api, '/admin/api');
    expect(served.length).toBeGreaterThanOrEqual(9);
    expect(served.filter((r) => !documented.has(r))).toEqual([]);
    // And nothing documented under /admin/api that the router does not serve.
    expect([...documented].filter((d) => d.includes('/admin/api/') && !served.includes(d))).toEqual([]);
    expect(documented.has('POST /webhooks/{sourceId}')).toBe(true);
    // The admin router serves no API route of its own outside that router (the page routes are not API).
    const admin = createAdminRouter({ config, queues, log, db: () => { throw new Error('unused'); }, accounts: { admin: { user: 'a', password: 'b' } } });
    expect(routesOf(admin, '/admin').filter((r) => r.includes('/admin/api'))).toEqual([]);
    redis.disconnect();
  });

  it('is served at /admin/api/openapi.json with a rendered reference page', async () => {
    const redis = createRedis('redis://127.0.0.1:6379', 'producer', { lazyConnect: true });
    const queues = createQueues(testQueueSettings(), redis, () => {});
    const app = express().use('/admin', createAdminRouter({ config, queues, log, db: () => { throw new Error('unused'); }, accounts: { admin: { user: 'a', password: 'b' } } }));
    expect((await request(app).get('/admin/api/openapi.json')).status).toBe(401);
    const j = await request(app).get('/admin/api/openapi.json').auth('a', 'b');
    expect(j.status).toBe(200);
    expect(j.body.paths['/admin/api/jobs/{id}']).toBeDefined();
    const page = await request(app).get('/admin/api/docs').auth('a', 'b');
    expect(page.status).toBe(200);
    expect(page.text).toContain('GET /admin/api/dead-letters/{id}');
    expect(page.text).toContain('POST /webhooks/{sourceId}');
    redis.disconnect();
  });
});
