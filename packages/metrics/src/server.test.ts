import { createServer } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '@fieldsync/logger';
import { Writable } from 'node:stream';
import { collectQueueDepth, createLoaderMetrics, createRegistry, serveMetrics, type MetricsServer } from './index.ts';

const lines: string[] = [];
const log = createLogger('t', { level: 'info', destination: new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) }) });
const servers: MetricsServer[] = [];
afterAll(() => Promise.all(servers.map((s) => s.close())));

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

describe('serveMetrics', () => {
  it('serves the registry at /metrics and nothing else', async () => {
    const m = createLoaderMetrics();
    m.recordsLoaded.inc({ source: 'kobo', form: 'a', via: 'poll' }, 3);
    const s = (await serveMetrics(m.registry, { port: await freePort(), host: '127.0.0.1', log }))!;
    servers.push(s);
    const res = await fetch(`http://127.0.0.1:${s.port}/metrics`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('fieldsync_records_loaded_total{source="kobo",form="a",via="poll"} 3');
    expect((await fetch(`http://127.0.0.1:${s.port}/`)).status).toBe(404);
  });

  it('a port already taken is a warning, not a crash; 0 is off', async () => {
    const port = await freePort();
    const first = (await serveMetrics(createRegistry(false), { port, host: '127.0.0.1', log }))!;
    servers.push(first);
    expect(await serveMetrics(createRegistry(false), { port, host: '127.0.0.1', log })).toBeNull();
    expect(lines.join('')).toContain(`metrics endpoint off: cannot listen on port ${port}`);
    expect(await serveMetrics(createRegistry(false), { port: 0, log })).toBeNull();
  });
});

describe('queue depth on scrape', () => {
  it('reports every queue and state; a Redis that fails leaves the gauge empty and the scrape whole', async () => {
    const registry = createRegistry(false);
    let broken = false;
    const queue = (name: string, waiting: number) => ({
      name,
      getJobCounts: async () => {
        if (broken) throw new Error('Connection is closed.');
        return { waiting, active: 1 };
      },
    });
    collectQueueDepth(registry, [queue('ingest', 7), queue('poll', 0)], { log });
    const ok = await registry.metrics();
    expect(ok).toContain('fieldsync_queue_jobs{queue="ingest",state="waiting"} 7');
    expect(ok).toContain('fieldsync_queue_jobs{queue="poll",state="active"} 1');
    expect(ok).toContain('fieldsync_queue_jobs{queue="poll",state="delayed"} 0');
    broken = true;
    const down = await registry.metrics();
    expect(down).toContain('# TYPE fieldsync_queue_jobs gauge');
    expect(down).not.toContain('fieldsync_queue_jobs{');
    expect(lines.join('')).toContain('metrics: could not read queue depth');
  });
});
