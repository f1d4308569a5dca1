/**
 * Throwaway databases for tests: each call creates a uniquely named database on
 * the real server, migrates it, and drops it on cleanup, so runs never collide.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
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

/**
 * A TCP hop between a process and the real database server that a test can cut
 * (every connection through it, as a server crash would) and plug back in.
 */
export class Cable {
  private server?: net.Server;
  private sockets = new Set<net.Socket>();
  port = 0;
  constructor(private readonly target: number) {}
  async plug(): Promise<void> {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.target, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {});
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
    this.port = (this.server!.address() as net.AddressInfo).port;
  }
  async cut(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }
}
