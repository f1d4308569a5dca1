import net from 'node:net';
import type { Server } from 'node:http';
import type { Logger } from '@fieldsync/logger';

export interface DrainOptions {
  /**
   * How long idle keep-alive connections stay open after the listener closes,
   * so a client that is about to reuse one gets an answer (with
   * `Connection: close`) instead of a reset.
   */
  idleGraceMs: number;
  /** After this, connections still open are cut (their requests were given their time). */
  deadlineMs: number;
  log: Logger;
}

/**
 * Graceful HTTP shutdown. Node's `server.close()` destroys idle keep-alive
 * sockets at once, and a client that sends its next request on one just then
 * gets a reset, with no answer. Instead: stop listening (new connections are
 * refused, which a client knows was never received); keep serving the open
 * connections for `idleGraceMs`, every answer carrying `Connection: close`
 * (the app sets it while draining), so each client closes its own socket
 * after its last answer; then close what is left idle, wait for requests in
 * flight, and cut only what is still open at the deadline.
 */
export function drainServer(server: Server, opts: DrainOptions): Promise<void> {
  return new Promise<void>((resolve) => {
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const deadline = setTimeout(() => {
      opts.log.warn({ deadlineMs: opts.deadlineMs }, 'shutdown: cutting connections still open at the deadline');
      server.closeAllConnections();
    }, opts.deadlineMs);
    // net.Server's close: stop listening, without http.Server's immediate closeIdleConnections().
    net.Server.prototype.close.call(server, () => {
      done = true;
      clearTimeout(deadline);
      clearInterval(timer);
      opts.log.info({ ms: Date.now() - started }, 'http connections drained');
      resolve();
    });
    setTimeout(() => {
      if (done) return;
      server.closeIdleConnections();
      // A connection finishing its last request becomes idle (or closes itself on Connection: close).
      timer = setInterval(() => server.closeIdleConnections(), 100);
    }, opts.idleGraceMs).unref();
  });
}
