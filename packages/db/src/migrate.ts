/**
 * Applies the committed SQL migrations in prisma/<provider>/migrations and keeps
 * `_prisma_migrations` exactly as Prisma's schema engine does, so that on a
 * machine with internet `prisma migrate deploy` / `status` agree with us.
 * (Prisma's own migrate needs a schema engine it cannot download here; see
 * shared/notes/prisma-offline.md.)
 */
import { createHash, randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import pg from 'pg';
import * as mariadb from 'mariadb';
import { dialectOf, type Dialect } from './dialect.ts';
import { mysqlConfig } from './database.ts';

export const MIGRATIONS_ROOT = fileURLToPath(new URL('../../../prisma/', import.meta.url));
const PG_LOCK_KEY = 72707369; // the key Prisma's engine uses

export interface Migration { name: string; sql: string; checksum: string }
export interface MigrateResult { applied: string[]; alreadyApplied: string[] }

export function migrationsDir(dialect: Dialect): string {
  return path.join(MIGRATIONS_ROOT, dialect, 'migrations');
}

export async function loadMigrations(dialect: Dialect): Promise<Migration[]> {
  const dir = migrationsDir(dialect);
  const names = (await readdir(dir, { withFileTypes: true }))
    .filter((d) => d.isDirectory() && existsSync(path.join(dir, d.name, 'migration.sql')))
    .map((d) => d.name)
    .sort();
  return Promise.all(
    names.map(async (name) => {
      const bytes = await readFile(path.join(dir, name, 'migration.sql'));
      return { name, sql: bytes.toString('utf8'), checksum: createHash('sha256').update(bytes).digest('hex') };
    }),
  );
}

interface Row { migration_name: string; finished_at: unknown; rolled_back_at: unknown; checksum: string }

/** The few statements that differ by dialect. */
interface Driver {
  lock(): Promise<void>;
  unlock(): Promise<void>;
  userTables(): Promise<string[]>;
  createTable(): Promise<void>;
  rows(): Promise<Row[]>;
  start(id: string, m: Migration): Promise<void>;
  run(sql: string): Promise<void>;
  finish(id: string): Promise<void>;
  fail(id: string, logs: string): Promise<void>;
  close(): Promise<void>;
}

async function pgDriver(url: string): Promise<Driver> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  // A server lost between two statements emits 'error' (uncaught without a listener); the statement fails anyway.
  c.on('error', () => {});
  await c.connect();
  return {
    lock: async () => void (await c.query('SELECT pg_advisory_lock($1)', [PG_LOCK_KEY])),
    unlock: async () => void (await c.query('SELECT pg_advisory_unlock($1)', [PG_LOCK_KEY])),
    userTables: async () =>
      (await c.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`)).rows.map((r) => r.table_name as string),
    createTable: async () =>
      void (await c.query(`CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id" VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum" VARCHAR(64) NOT NULL,
    "finished_at" TIMESTAMPTZ,
    "migration_name" VARCHAR(255) NOT NULL,
    "logs" TEXT,
    "rolled_back_at" TIMESTAMPTZ,
    "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count" INTEGER NOT NULL DEFAULT 0
)`)),
    rows: async () => (await c.query('SELECT migration_name, finished_at, rolled_back_at, checksum FROM "_prisma_migrations" ORDER BY started_at')).rows,
    start: async (id, m) =>
      void (await c.query('INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at) VALUES ($1, $2, $3, now())', [id, m.checksum, m.name])),
    // PostgreSQL DDL is transactional: a failed file leaves nothing half-applied.
    run: async (sql) => {
      await c.query('BEGIN');
      try {
        await c.query(sql);
        await c.query('COMMIT');
      } catch (e) {
        await c.query('ROLLBACK');
        throw e;
      }
    },
    finish: async (id) => void (await c.query('UPDATE "_prisma_migrations" SET applied_steps_count = 1, finished_at = now() WHERE id = $1', [id])),
    fail: async (id, logs) => void (await c.query('UPDATE "_prisma_migrations" SET logs = $2 WHERE id = $1', [id, logs])),
    close: () => c.end(),
  };
}

async function mysqlDriver(url: string): Promise<Driver> {
  const c = await mariadb.createConnection({ ...mysqlConfig(url), multipleStatements: true });
  c.on('error', () => {}); // as above: the next statement reports it
  return {
    lock: async () => void (await c.query("SELECT GET_LOCK('prisma_migrate', 600)")),
    unlock: async () => void (await c.query("SELECT RELEASE_LOCK('prisma_migrate')")),
    userTables: async () =>
      ((await c.query(`SELECT table_name AS t FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'`)) as { t: string }[]).map((r) => r.t),
    createTable: async () =>
      void (await c.query(`CREATE TABLE IF NOT EXISTS _prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             DATETIME(3),
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          DATETIME(3),
    started_at              DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    applied_steps_count     INTEGER UNSIGNED NOT NULL DEFAULT 0
) DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`)),
    rows: async () => (await c.query('SELECT migration_name, finished_at, rolled_back_at, checksum FROM _prisma_migrations ORDER BY started_at')) as Row[],
    start: async (id, m) =>
      void (await c.query('INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at) VALUES (?, ?, ?, CURRENT_TIMESTAMP(3))', [id, m.checksum, m.name])),
    // MySQL DDL is not transactional; the whole file runs as one script like Prisma's engine does.
    run: async (sql) => void (await c.query(sql)),
    finish: async (id) => void (await c.query('UPDATE _prisma_migrations SET applied_steps_count = 1, finished_at = CURRENT_TIMESTAMP(3) WHERE id = ?', [id])),
    fail: async (id, logs) => void (await c.query('UPDATE _prisma_migrations SET logs = ? WHERE id = ?', [logs, id])),
    close: () => c.end(),
  };
}

/** Applies pending migrations; idempotent and safe to run from several processes at once. */
export async function migrate(url: string): Promise<MigrateResult> {
  const dialect = dialectOf(url);
  const migrations = await loadMigrations(dialect);
  const d = dialect === 'postgresql' ? await pgDriver(url) : await mysqlDriver(url);
  try {
    await d.lock();
    try {
      const tables = await d.userTables();
      if (!tables.includes('_prisma_migrations') && tables.length > 0) {
        throw new Error(`P3005: the database is not empty (${tables.slice(0, 5).join(', ')}) and has no _prisma_migrations table; refusing to migrate it`);
      }
      await d.createTable();
      const rows = await d.rows();
      const failed = rows.find((r) => r.finished_at == null && r.rolled_back_at == null);
      if (failed) {
        throw new Error(`P3009: migration ${failed.migration_name} failed earlier; resolve it (prisma migrate resolve) before applying more`);
      }
      const done = new Set(rows.filter((r) => r.rolled_back_at == null).map((r) => r.migration_name));
      const result: MigrateResult = { applied: [], alreadyApplied: [] };
      for (const m of migrations) {
        if (done.has(m.name)) {
          result.alreadyApplied.push(m.name);
          continue;
        }
        const id = randomUUID();
        await d.start(id, m);
        try {
          await d.run(m.sql);
        } catch (err) {
          const msg = err instanceof Error ? err.message : String(err);
          await d.fail(id, msg);
          throw new Error(`migration ${m.name} failed: ${msg}`, { cause: err });
        }
        await d.finish(id);
        result.applied.push(m.name);
      }
      return result;
    } finally {
      await d.unlock();
    }
  } finally {
    await d.close();
  }
}
