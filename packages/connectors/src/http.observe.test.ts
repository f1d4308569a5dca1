/** The HTTP client reports every attempt's status (retries included) to onResponse, 'error' when no response came. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createHttpClient } from './http.ts';

let server: Server;
let base: string;
const script: number[] = [];
beforeAll(async () => {
  server = createServer((_req, res) => res.writeHead(script.shift() ?? 200).end('{}'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

const policy = { timeoutMs: 2_000, retries: 2, backoffMs: 1, maxBackoffMs: 5 };

it('counts each attempt by status, and attempts without a response as error', async () => {
  const seen: string[] = [];
  const http = createHttpClient({ policy, onResponse: (s) => seen.push(s) });
  script.push(503, 200);
  await http.get(`${base}/a`);
  script.push(401);
  await expect(http.get(`${base}/b`)).rejects.toThrow(/401/);
  expect(seen).toEqual(['503', '200', '401']);
  seen.length = 0;
  // Nothing listens there: the first try and both retries fail without a response.
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const dead = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
  await new Promise<void>((r) => closed.close(() => r()));
  await expect(http.get(dead)).rejects.toThrow();
  expect(seen).toEqual(['error', 'error', 'error']);
});
