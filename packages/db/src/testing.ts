/**
 * Throwaway databases for tests: each call creates a uniquely named database on
 * the real server, migrates it, and drops it on cleanup, so runs never collide.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import * as mariadb from 'mariadb';
import { migrate } from './migrate.ts';
import { openDatabase, mysqlConfig, type Database } from './database.ts';
import type { Dialect } from './dialect.ts';

export const TEST_SERVERS: Record<Dialect, string> = {
  postgresql: process.env.TEST_PG_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres',
  mysql: process.env.TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test',
};

export interface TestDatabase {
  url: string;
  db: Database;
  drop(): Promise<void>;
}

function withDatabase(server: string, name: string): string {
  const u = new URL(server);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Creates an empty database (no migrations); returns its URL. */
export async function createEmptyDatabase(dialect: Dialect): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `fs_test_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  const server = TEST_SERVERS[dialect];
  if (dialect === 'postgresql') {
    const admin = async (sql: string) => {
      const c = new pg.Client({ connectionString: server });
      await c.connect();
      try { await c.query(sql); } finally { await c.end(); }
    };
    await admin(`CREATE DATABASE "${name}"`);
    return { url: withDatabase(server, name), drop: () => admin(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`) };
  }
  const admin = async (sql: string) => {
    const c = await mariadb.createConnection(mysqlConfig(server));
    try { await c.query(sql); } finally { await c.end(); }
  };
  await admin(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  return { url: withDatabase(server, name), drop: () => admin(`DROP DATABASE IF EXISTS \`${name}\``) };
}

/** A fresh, migrated database opened for use. */
export async function createTestDatabase(dialect: Dialect): Promise<TestDatabase> {
  const empty = await createEmptyDatabase(dialect);
  await migrate(empty.url);
  const db = openDatabase(empty.url, { poolSize: 4 });
  return {
    url: empty.url,
    db,
    async drop() {
      await db.close().catch(() => {});
      await empty.drop();
    },
  };
}
