/** Creating and dropping whole databases (tests, the demo); needs a user allowed to. */
import pg from 'pg';
import * as mariadb from 'mariadb';
import { mysqlConfig } from './database.ts';
import { dialectOf, quoteIdent } from './dialect.ts';

function split(url: string): { server: string; name: string } {
  const u = new URL(url);
  const name = decodeURIComponent(u.pathname.replace(/^\//, ''));
  u.pathname = dialectOf(url) === 'postgresql' ? '/postgres' : '/';
  return { server: u.toString(), name };
}

async function admin(url: string, sql: string): Promise<void> {
  const { server } = split(url);
  if (dialectOf(url) === 'postgresql') {
    const c = new pg.Client({ connectionString: server, connectionTimeoutMillis: 10_000 });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
    return;
  }
  const c = await mariadb.createConnection(mysqlConfig(server));
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

export async function dropDatabase(url: string): Promise<void> {
  const { name } = split(url);
  const d = dialectOf(url);
  await admin(url, d === 'postgresql' ? `DROP DATABASE IF EXISTS ${quoteIdent(d, name)} WITH (FORCE)` : `DROP DATABASE IF EXISTS ${quoteIdent(d, name)}`);
}

/** Drops the database named in the URL if it exists and creates it empty. */
export async function recreateDatabase(url: string): Promise<void> {
  const { name } = split(url);
  const d = dialectOf(url);
  await dropDatabase(url);
  await admin(url, d === 'postgresql' ? `CREATE DATABASE ${quoteIdent(d, name)}` : `CREATE DATABASE ${quoteIdent(d, name)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
}
