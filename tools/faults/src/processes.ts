/**
 * The apps as real processes, the way an operator runs them: `tsx apps/<app>/src/main.ts`
 * with env. Fault tests kill, stop and restart them and read their logs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export type AppName = 'ingress' | 'poller' | 'loader';

export interface AppProcess {
  name: AppName;
  child: ChildProcess;
  /** Everything the process wrote so far (stdout + stderr). */
  output(): string;
  /** Resolves with the exit code (or the signal's name) once the process is gone. */
  exited: Promise<number | string>;
  /** True while the process runs. */
  alive(): boolean;
  kill(signal?: NodeJS.Signals): void;
}

/** Writes a config file (YAML or JSON text) into a fresh temp dir; returns its path. */
export function writeConfig(text: string, file = 'fieldsync.config.yaml'): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'fieldsync-faults-'));
  const p = path.join(dir, file);
  writeFileSync(p, text);
  return p;
}

/** `nodeArgs` go before the script (e.g. --cpu-prof, which NODE_OPTIONS refuses). */
export function startApp(name: AppName, env: Record<string, string>, nodeArgs: string[] = []): AppProcess {
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', path.join(ROOT, 'apps', name, 'src', 'main.ts')], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'info', SHUTDOWN_TIMEOUT_S: '20', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let running = true;
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | string>((resolve) =>
    child.on('exit', (code, signal) => {
      running = false;
      resolve(code ?? signal ?? 'unknown');
    }),
  );
  return {
    name,
    child,
    output: () => out,
    exited,
    alive: () => running,
    kill: (signal = 'SIGTERM') => void child.kill(signal),
  };
}

/** Stops every process still running (SIGKILL after a grace period): for afterAll/afterEach. */
export async function stopAll(apps: AppProcess[], graceMs = 15_000): Promise<void> {
  await Promise.all(
    apps.filter((a) => a.alive()).map(async (a) => {
      a.kill('SIGTERM');
      const t = setTimeout(() => a.kill('SIGKILL'), graceMs);
      await a.exited;
      clearTimeout(t);
    }),
  );
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A TCP port free on loopback right now. */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = createServer().once('error', reject).listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Polls `check` every `everyMs` until it returns true; throws `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 100): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}
