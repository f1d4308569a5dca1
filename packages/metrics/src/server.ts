import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { Logger } from '@fieldsync/logger';

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` on its own port. Port 0 = off (resolves null). A port
 * already taken (several loaders on one machine) is not fatal: metrics are
 * worth less than the process's work, so it logs a warning and goes on without.
 */
export async function serveMetrics(registry: Registry, o: { port: number; host?: string; log?: Logger }): Promise<MetricsServer | null> {
  if (!o.port) return null;
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${(err as Error).message}\n`),
    );
  });
  server.keepAliveTimeout = 65_000; // longer than Prometheus's scrape interval: connections reused
  const listening = await new Promise<boolean>((resolve) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      o.log?.warn({ port: o.port, err: err.message }, `metrics endpoint off: cannot listen on port ${o.port} (set METRICS_PORT to a free port, or 0 to silence this)`);
      resolve(false);
    });
    server.listen(o.port, o.host, () => resolve(true));
  });
  if (!listening) return null;
  server.unref(); // never what keeps a process alive
  const port = (server.address() as AddressInfo).port;
  o.log?.info({ port, path: '/metrics' }, 'metrics endpoint listening');
  return {
    port,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
