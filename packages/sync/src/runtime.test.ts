/**
 * A process started while the database is down waits for it (saying so) instead
 * of exiting; one whose credentials or database name are wrong is told so at once.
 */
import { describe, expect, it } from 'vitest';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import { migrate } from '@fieldsync/db';
import { TEST_SERVERS, createEmptyDatabase } from '@fieldsync/db/testing';
import { createLogger } from '@fieldsync/logger';
import { DatabaseRefusedError, waitForDatabase } from './runtime.ts';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({ write(chunk, _e, cb) { lines.push(JSON.parse(String(chunk)) as Record<string, unknown>); cb(); } });
  return { lines, log: createLogger('test', { destination, level: 'info' }) };
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

describe.each([['postgresql', 5432], ['mysql', 3306]] as const)('waiting for the database on %s', (dialect, realPort) => {
  it('waits while nothing answers, logs that it waits (password hidden), and goes on once the server is there', async () => {
    const port = await freePort();
    const empty = await createEmptyDatabase(dialect);
    const u = new URL(empty.url);
    u.port = String(port);
    u.password = 'secret-pw';
    // The server "comes up" after a while: a TCP hop to the real one opens on the port.
    let hop: net.Server | undefined;
    const later = setTimeout(() => {
      hop = net.createServer((c) => c.pipe(net.connect(realPort, '127.0.0.1')).pipe(c)).listen(port, '127.0.0.1');
    }, 800);
    const { lines, log } = capture();
    const noPassword = new URL(u);
    noPassword.password = '';
    try {
      // mariadb root has no password, so the attempt goes without one; the logged URL is the configured one.
      await waitForDatabase(u.toString(), log, () => migrate(dialect === 'mysql' ? noPassword.toString() : u.toString()), { baseMs: 50, maxMs: 200, logEveryMs: 0 });
    } finally {
      clearTimeout(later);
      hop?.close();
      await empty.drop();
    }
    const waits = lines.filter((l) => l.msg === 'database unavailable; waiting');
    expect(waits.length).toBeGreaterThan(1);
    expect(waits[0]).toMatchObject({ attempt: 1, level: 40 });
    expect(JSON.stringify(waits)).not.toContain('secret-pw');
    expect(lines.at(-1)).toMatchObject({ msg: 'database reachable' });
    expect((lines.at(-1) as { attempts: number }).attempts).toBe(waits.length + 1);
  });

  it('a refused login or a missing database ends the wait at once, saying what to fix', async () => {
    const badUser = new URL(TEST_SERVERS[dialect]);
    badUser.username = 'fieldsync_nobody';
    badUser.password = 'wrong';
    const noDb = new URL(TEST_SERVERS[dialect]);
    noDb.pathname = '/fieldsync_no_such_db';
    for (const url of [badUser.toString(), noDb.toString()]) {
      const { lines, log } = capture();
      const err = await waitForDatabase(url, log, () => migrate(url), { baseMs: 50 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DatabaseRefusedError);
      expect((err as Error).message).toMatch(/refused us: .*check the user, password and database name in DATABASE_URL/);
      expect((err as Error).message).not.toContain('wrong');
      expect(lines.filter((l) => l.msg === 'database unavailable; waiting')).toEqual([]);
    }
  });
});

describe('a driver rejection nobody holds', () => {
  // A real child process: Node's own handling of unhandled rejections is what is under test.
  const run = (error: string) =>
    new Promise<{ code: number | null; out: string }>((resolve) => {
      const script = `
        import { createLogger } from '@fieldsync/logger';
        import { surviveDriverRejections } from './src/runtime.ts';
        surviveDriverRejections(createLogger('t', { level: 'info' }));
        Promise.reject(${error});
        setTimeout(() => { console.log('still alive'); process.exit(0); }, 300);`;
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: new URL('..', import.meta.url), stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      child.on('exit', (code) => resolve({ code, out }));
    });

  it('a lost connection in the mariadb set-up chain is logged and lived through', async () => {
    const r = await run(`Object.assign(new Error("setting timezone '+00:00' fails on server."), { fatal: true, sqlState: '08S01', code: 'ER_WRONG_IANA_TIMEZONE' })`);
    expect(r.out).toContain('still alive');
    expect(r.out).toContain('the pool retries');
    expect(r.code).toBe(0);
  });

  it('any other unhandled rejection still ends the process', async () => {
    const r = await run(`new TypeError('a bug')`);
    expect(r.out).not.toContain('still alive');
    expect(r.out).toContain('unhandled promise rejection');
    expect(r.code).toBe(1);
  });
});
