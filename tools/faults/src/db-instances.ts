/**
 * Database servers a fault test owns: its own PostgreSQL or MariaDB, on its own
 * port and data directory, that it can stop (as an operator or a crash would)
 * and start again without touching the shared test servers.
 *
 * We run as root; PostgreSQL refuses to, so its commands run as the `postgres`
 * OS user on a directory that user owns. MariaDB runs as root (`--user=root`).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import net from 'node:net';
import { freePort, sleep } from './processes.ts';

const run = promisify(execFile);
const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';
const MARIADB_BIN = process.env.MARIADB_BIN ?? '/usr/sbin/mariadbd';
const MARIADB_INSTALL = process.env.MARIADB_INSTALL_DB ?? '/usr/bin/mariadb-install-db';

export interface DbInstance {
  kind: 'postgresql' | 'mysql';
  port: number;
  /** Server URL (no database name for MySQL: `test` is created; `postgres` for PostgreSQL). */
  url: string;
  /** Stops the server the way an operator would (pg_ctl stop -m fast / SIGTERM to mariadbd). */
  stop(): Promise<void>;
  /** Starts it again on the same port and data directory. */
  start(): Promise<void>;
  /** Stops it and deletes its data directory. */
  destroy(): Promise<void>;
}

/** Resolves once something accepts TCP connections on the port, or throws after timeoutMs. */
async function listening(port: number, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`nothing listening on port ${port} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** As the postgres OS user when we are root (initdb and postgres refuse root). */
function asPostgres(cmd: string, args: string[]): [string, string[]] {
  return userInfo().uid === 0 ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
}

export async function startPostgres(): Promise<DbInstance> {
  const dir = mkdtempSync(path.join(tmpdir(), 'fieldsync-pg-'));
  if (userInfo().uid === 0) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    chownSync(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  const data = path.join(dir, 'data');
  const port = await freePort();
  await run(...asPostgres(path.join(PG_BIN, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']));
  const pgCtl = (...args: string[]) => run(...asPostgres(path.join(PG_BIN, 'pg_ctl'), ['-D', data, ...args]), { timeout: 60_000 });
  // Socket in the data directory (no clash with the system server's); fsync off: a test server, fast.
  const opts = `-p ${port} -k ${data} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100`;
  const inst: DbInstance = {
    kind: 'postgresql',
    port,
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    async start() {
      await pgCtl('start', '-w', '-t', '60', '-l', path.join(dir, 'server.log'), '-o', opts);
      await listening(port, 30_000);
    },
    async stop() {
      await pgCtl('stop', '-m', 'fast', '-w');
    },
    async destroy() {
      await pgCtl('stop', '-m', 'immediate', '-w').catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await inst.start();
  return inst;
}

export async function startMariaDb(): Promise<DbInstance> {
  const dir = mkdtempSync(path.join(tmpdir(), 'fieldsync-mariadb-'));
  const data = path.join(dir, 'data');
  const socket = path.join(dir, 'mysqld.sock');
  const port = await freePort();
  await run(MARIADB_INSTALL, [`--datadir=${data}`, '--user=root', '--auth-root-authentication-method=normal', '--skip-test-db', '--no-defaults'], { timeout: 120_000 });
  let server: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const inst: DbInstance = {
    kind: 'mysql',
    port,
    url: `mysql://root@127.0.0.1:${port}/test`,
    async start() {
      server = spawn(
        MARIADB_BIN,
        [
          '--no-defaults', `--datadir=${data}`, `--port=${port}`, `--socket=${socket}`, '--bind-address=127.0.0.1', '--user=root',
          `--pid-file=${path.join(dir, 'mysqld.pid')}`, `--log-error=${path.join(dir, 'error.log')}`,
          // A test server: small and quick, durability not needed.
          '--innodb-buffer-pool-size=128M', '--innodb-flush-log-at-trx-commit=0', '--skip-log-bin', '--max-connections=200',
        ],
        { stdio: 'ignore' },
      );
      const child = server;
      exited = new Promise((resolve) => child.once('exit', () => resolve()));
      await listening(port, 60_000);
      // The first start has no `test` database yet.
      await run(path.join(path.dirname(MARIADB_INSTALL), 'mariadb'), ['--no-defaults', `--socket=${socket}`, '-uroot', '-e', 'CREATE DATABASE IF NOT EXISTS test'], { timeout: 30_000 });
    },
    async stop() {
      if (!server || server.exitCode !== null) return;
      server.kill('SIGTERM'); // mariadbd's normal shutdown
      await exited;
      server = undefined;
    },
    async destroy() {
      if (server && server.exitCode === null) {
        server.kill('SIGKILL');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await inst.start();
  return inst;
}
