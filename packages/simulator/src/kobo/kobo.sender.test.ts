import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { sendKoboRestService, type KoboRestService } from './kobo.sender.ts';

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  method?: string;
}

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r) ?? r(undefined));
  server = undefined;
});

/** A webhook receiver that answers the scripted statuses in order (200 once the script runs out); `hang` never answers. */
async function receiver(script: (number | 'hang')[]) {
  const received: Received[] = [];
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push({ headers: req.headers, body, method: req.method });
      const step = script.shift() ?? 200;
      if (step !== 'hang') res.writeHead(step, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server!.address() as AddressInfo).port}/hooks/kobo`, received };
}

const record = { _id: 7, 'meta/instanceID': 'uuid:a', 'meta/rootUuid': 'uuid:a', _xform_id_string: 'aForm', q: '1' };
const fast: Partial<KoboRestService> = { retryDelaysMs: [5, 5, 5, 5], jitter: false };

describe('sendKoboRestService', () => {
  it('POSTs the bare record as JSON with Kobo headers, Basic auth and custom headers', async () => {
    const { url, received } = await receiver([200]);
    const r = await sendKoboRestService(record, { ...fast, url, auth: { username: 'kobo', password: 's3cret' }, headers: { 'x-fieldsync-token': 't' }, hookUid: 'hAbc', domain: 'kf.example.org' });
    expect(r).toMatchObject({ ok: true, status: 200 });
    expect(received).toHaveLength(1);
    const [req] = received;
    expect(req!.method).toBe('POST');
    expect(JSON.parse(req!.body)).toEqual(record);
    expect(req!.headers['content-type']).toBe('application/json');
    expect(req!.headers['user-agent']).toBe('KoboToolbox external service - kf.example.org #hAbc');
    expect(req!.headers.authorization).toBe(`Basic ${Buffer.from('kobo:s3cret').toString('base64')}`);
    expect(req!.headers['x-fieldsync-token']).toBe('t');
  });

  it('retries on 503/502/504, then succeeds', async () => {
    const { url, received } = await receiver([503, 502, 504]);
    const r = await sendKoboRestService(record, { ...fast, url });
    expect(r.ok).toBe(true);
    expect(r.attempts.map((a) => a.status)).toEqual([503, 502, 504, 200]);
    expect(received).toHaveLength(4);
  });

  it('gives up after 5 POSTs (4 delays)', async () => {
    const { url, received } = await receiver([503, 503, 503, 503, 503, 503]);
    const r = await sendKoboRestService(record, { ...fast, url });
    expect(r.ok).toBe(false);
    expect(received).toHaveLength(5);
    expect(r.error).toMatch(/gave up after 5 attempts/);
  });

  it.each([400, 401, 404, 500])('does not retry on %i', async (status) => {
    const { url, received } = await receiver([status]);
    const r = await sendKoboRestService(record, { ...fast, url });
    expect(r).toMatchObject({ ok: false, status });
    expect(r.error).toMatch(/not retried/);
    expect(received).toHaveLength(1);
  });

  it('retries a timeout', async () => {
    const { url, received } = await receiver(['hang']);
    const r = await sendKoboRestService(record, { ...fast, url, timeoutMs: 200 });
    expect(r.ok).toBe(true);
    expect(r.attempts[0]!.error).toBe('ETIMEDOUT');
    expect(received).toHaveLength(2);
  });

  it('fails at once on a refused connection', async () => {
    const { url } = await receiver([]);
    server!.close();
    server!.closeAllConnections();
    server = undefined;
    const r = await sendKoboRestService(record, { ...fast, url });
    expect(r.ok).toBe(false);
    expect(r.attempts).toHaveLength(1);
    expect(r.attempts[0]!.error).toBe('ECONNREFUSED');
  });

  it('re-reads the record at each attempt and sends only a field subset when set', async () => {
    const { url, received } = await receiver([503]);
    let version = 'uuid:a';
    const read = () => ({ ...record, 'meta/instanceID': version });
    const pending = sendKoboRestService(read, { url, retryDelaysMs: [100], jitter: false, fields: ['meta/instanceID', '_xform_id_string', 'q'] });
    await new Promise((r) => setTimeout(r, 50));
    version = 'uuid:b';
    expect((await pending).ok).toBe(true);
    expect(received.map((x) => JSON.parse(x.body))).toEqual([
      { 'meta/instanceID': 'uuid:a', _xform_id_string: 'aForm', q: '1' },
      { 'meta/instanceID': 'uuid:b', _xform_id_string: 'aForm', q: '1' },
    ]);
  });

  it('waits the configured delays between POSTs (exactly, without jitter)', async () => {
    const { url } = await receiver([503, 503]);
    const r = await sendKoboRestService(record, { url, retryDelaysMs: [150, 150], jitter: false });
    expect(r.ok).toBe(true);
    const at = r.attempts.map((a) => a.at.getTime());
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(150);
    expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(150);
  });
});
