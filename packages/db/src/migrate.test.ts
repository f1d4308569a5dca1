/**
 * The migration runner (migrate.ts) against real PostgreSQL and MariaDB servers:
 * it must keep `_prisma_migrations` the way Prisma's engine does and refuse what
 * Prisma refuses, so that `prisma migrate deploy` / `status` agree with it.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import * as mariadb from 'mariadb';
import { migrate, migrationsDir } from './migrate.ts';
import { mysqlConfig } from './database.ts';
import { createEmptyDatabase } from './testing.ts';
import type { Dialect } from './dialect.ts';

/** Runs statements on a database of either dialect (`?` placeholders on MySQL, `$n` on PostgreSQL). */
async function withSql<T>(dialect: Dialect, url: string, fn: (q: (text: string, params?: unknown[]) => Promise<Record<string, unknown>[]>) => Promise<T>): Promise<T> {
  if (dialect === 'postgresql') {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      return await fn(async (text, params) => (await c.query(text, params)).rows);
    } finally {
      await c.end();
    }
  }
  const c = await mariadb.createConnection({ ...mysqlConfig(url), multipleStatements: true });
  try {
    return await fn(async (text, params) => {
      const r = await c.query(text, params);
      return Array.isArray(r) ? [...r] : [];
    });
  } finally {
    await c.end();
  }
}

/** The committed migrations as files on disk, read independently of migrate.ts. */
function committed(dialect: Dialect): { name: string; sha256: string }[] {
  const dir = migrationsDir(dialect);
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(path.join(dir, d.name, 'migration.sql')))
    .map((d) => d.name)
    .sort()
    .map((name) => ({ name, sha256: createHash('sha256').update(readFileSync(path.join(dir, name, 'migration.sql'))).digest('hex') }));
}

const MODEL_TABLES = ['Submission', 'SupersededVersion', 'SyncState', 'SyncRun', 'DeadLetter', 'FormSchema', 'Attachment'];

describe.each<Dialect>(['postgresql', 'mysql'])('migration runner on %s', (dialect) => {
  const q = (name: string) => (dialect === 'postgresql' ? `"${name}"` : `\`${name}\``);
  const drops: (() => Promise<void>)[] = [];
  afterEach(async () => {
    while (drops.length) await drops.pop()!().catch(() => {});
  });
  const fresh = async () => {
    const db = await createEmptyDatabase(dialect);
    drops.push(db.drop);
    return db.url;
  };
  const history = (url: string) =>
    withSql(dialect, url, (sql) => sql(`SELECT * FROM ${q('_prisma_migrations')} ORDER BY started_at, migration_name`));

  it('records every migration like Prisma: checksum = sha256 of migration.sql, applied_steps_count 1, finished', async () => {
    const url = await fresh();
    const files = committed(dialect);
    expect(files.length).toBeGreaterThan(0);
    const r = await migrate(url);
    expect(r).toEqual({ applied: files.map((f) => f.name), alreadyApplied: [] });
    const rows = await history(url);
    expect(rows.map((row) => row.migration_name)).toEqual(files.map((f) => f.name));
    for (const [i, row] of rows.entries()) {
      expect(row.checksum).toBe(files[i]!.sha256);
      expect(Number(row.applied_steps_count)).toBe(1);
      expect(row.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(row.finished_at).toBeInstanceOf(Date);
      expect((row.finished_at as Date).getTime()).toBeGreaterThanOrEqual((row.started_at as Date).getTime());
      expect(row.rolled_back_at).toBeNull();
      expect(row.logs).toBeNull();
    }
    // and a second run is a no-op
    expect(await migrate(url)).toEqual({ applied: [], alreadyApplied: files.map((f) => f.name) });
    expect(await history(url)).toHaveLength(files.length);
  });

  it('refuses a non-empty database that has no _prisma_migrations (P3005) and leaves it untouched', async () => {
    const url = await fresh();
    await withSql(dialect, url, (sql) => sql(`CREATE TABLE ${q('legacy')} (id INTEGER PRIMARY KEY)`));
    await expect(migrate(url)).rejects.toThrow(/P3005.*legacy/);
    const tables = await withSql(dialect, url, (sql) =>
      sql(dialect === 'postgresql'
        ? `SELECT table_name AS t FROM information_schema.tables WHERE table_schema = current_schema()`
        : `SELECT table_name AS t FROM information_schema.tables WHERE table_schema = DATABASE()`));
    expect(tables.map((t) => t.t)).toEqual(['legacy']);
  });

  it('refuses to go on after a failed migration (P3009) until it is marked rolled back', async () => {
    const url = await fresh();
    const [first] = committed(dialect);
    await migrate(url);
    // Forget the history: the runner now re-runs the first migration, whose CREATE TABLE fails.
    await withSql(dialect, url, (sql) => sql(`DELETE FROM ${q('_prisma_migrations')}`));
    await expect(migrate(url)).rejects.toThrow(new RegExp(`migration ${first!.name} failed`));
    const [failed] = await history(url);
    expect(failed).toMatchObject({ migration_name: first!.name, finished_at: null, rolled_back_at: null });
    expect(Number(failed!.applied_steps_count)).toBe(0);
    expect(String(failed!.logs)).toMatch(/already exists/i);

    await expect(migrate(url)).rejects.toThrow(new RegExp(`P3009: migration ${first!.name} failed earlier`));
    expect(await history(url)).toHaveLength(1); // nothing was attempted

    // What `prisma migrate resolve --rolled-back` does, after the operator cleaned up:
    await withSql(dialect, url, async (sql) => {
      await sql(`UPDATE ${q('_prisma_migrations')} SET rolled_back_at = ${dialect === 'postgresql' ? 'now()' : 'CURRENT_TIMESTAMP(3)'}`);
      for (const t of MODEL_TABLES) await sql(`DROP TABLE ${q(t)}`);
    });
    const r = await migrate(url);
    expect(r.applied).toEqual(committed(dialect).map((f) => f.name));
    const rows = await history(url);
    expect(rows.filter((row) => row.rolled_back_at !== null)).toHaveLength(1);
    expect(rows.filter((row) => row.finished_at !== null && row.rolled_back_at === null).map((row) => row.migration_name)).toEqual(r.applied);
  });

  it('serialises concurrent runners: each migration is applied exactly once', async () => {
    const url = await fresh();
    const names = committed(dialect).map((f) => f.name);
    const results = await Promise.all(Array.from({ length: 4 }, () => migrate(url)));
    expect(results.flatMap((r) => r.applied).sort()).toEqual(names);
    for (const r of results) expect([...r.applied, ...r.alreadyApplied].sort()).toEqual(names);
    expect(results.filter((r) => r.applied.length > 0)).toHaveLength(1);
    const rows = await history(url);
    expect(rows.map((row) => row.migration_name)).toEqual(names);
    expect(rows.every((row) => row.finished_at !== null)).toBe(true);
  });
});
