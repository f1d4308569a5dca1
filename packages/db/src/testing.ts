/**
 * Throwaway databases for tests: each call creates a uniquely named database on
 * the real server, migrates it, and drops it on cleanup, so runs never collide.
 */
import { randomBytes } from 'node:crypto';
import { migrate } from './migrate.ts';
import { openDatabase, type Database } from './database.ts';
import { recreateDatabase, dropDatabase } from './admin.ts';
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

/** Creates an empty, uniquely named database (no migrations); returns its URL. */
export async function createEmptyDatabase(dialect: Dialect): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `fs_test_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  const url = withDatabase(TEST_SERVERS[dialect], name);
  await recreateDatabase(url);
  return { url, drop: () => dropDatabase(url) };
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
