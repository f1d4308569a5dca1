/**
 * A Redis of the test's own (redis-server on a free port, its data in a temp
 * dir), so it can be crashed and restarted without touching the shared one.
 * AOF with fsync on every write: what a deployment that must not lose an
 * acknowledged job runs, and deterministic for the test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort, waitFor } from './processes.ts';

export interface RedisInstance {
  url: string;
  port: number;
  dir: string;
  /** Stops it (SIGKILL: a crash; SIGTERM: a clean shutdown) and waits until it is gone. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port and data dir; resolves once it answers PING. */
  start(): Promise<void>;
  /** Stops for good and deletes its data. */
  destroy(): Promise<void>;
}

async function ping(url: string): Promise<boolean> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500 });
  r.on('error', () => {});
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

export async function startRedisInstance(): Promise<RedisInstance> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'fieldsync-redis-'));
  const url = `redis://127.0.0.1:${port}`;
  let child: ChildProcess | null = null;
  let exited: Promise<void> = Promise.resolve();
  let log = '';

  const start = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always', '--save', ''], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d) => (log += d));
    child.stderr!.on('data', (d) => (log += d));
    const c = child;
    exited = new Promise((resolve) => c.once('exit', () => resolve()));
    try {
      await waitFor(`redis-server on ${port}`, () => ping(url), 10_000, 50);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${log.slice(-2000)}`, { cause: err });
    }
  };
  const stop = async (signal: NodeJS.Signals = 'SIGKILL') => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
    child = null;
  };
  await start();
  return {
    url, port, dir, start, stop,
    async destroy() {
      await stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
