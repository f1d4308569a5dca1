import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import * as mariadb from 'mariadb';
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaMariaDb } from '@prisma/adapter-mariadb';
import { PrismaClient as PgClient } from './generated/pg/client.ts';
import { PrismaClient as MysqlClient } from './generated/mysql/client.ts';
import { dialectOf, type Dialect } from './dialect.ts';

/** The generated clients of both providers share one model set; the PostgreSQL type stands for both. */
export type Prisma = PgClient;

/** A raw connection for the statements Prisma cannot express (bulk upserts). */
export interface Sql {
  /** `?` placeholders on both dialects. */
  query<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  /** Rows affected by a write. */
  execute(text: string, params?: unknown[]): Promise<number>;
  /**
   * PostgreSQL, inside a transaction only: `COPY … FROM STDIN` fed with text-format
   * lines (see copyLine). Absent on MySQL and on the pool: a temporary table filled
   * this way is only useful to the statements of the same transaction.
   */
  copyIn?(statement: string, data: Iterable<string>): Promise<void>;
}

/** A value as a field of COPY's text format: `\N` for null, backslash, tab and line breaks escaped. */
function copyField(v: unknown): string {
  if (v === null || v === undefined) return '\\N';
  if (typeof v === 'boolean') return v ? 't' : 'f';
  const t = String(v);
  // JSON text has no raw tabs or line breaks, only backslashes: the common case is one scan.
  return /[\\\t\n\r]/.test(t) ? t.replace(/[\\\t\n\r]/g, (c) => COPY_ESCAPES[c]!) : t;
}

/** One row of COPY's text format (fields in the statement's column order), for Sql.copyIn. */
export function copyLine(fields: readonly unknown[]): string {
  return fields.map(copyField).join('\t') + '\n';
}

const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

export interface Database {
  readonly dialect: Dialect;
  readonly prisma: Prisma;
  readonly sql: Sql;
  /** Runs fn on one connection inside one transaction. */
  transaction<T>(fn: (sql: Sql) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface OpenOptions {
  poolSize?: number;
  /** Milliseconds to wait for a connection before failing. */
  connectTimeoutMs?: number;
}

/** `?` → `$1…$n` for node-postgres (our SQL never has `?` inside literals). */
function toPgPlaceholders(text: string): string {
  let n = 0;
  return text.replace(/\?/g, () => `$${++n}`);
}

function pgSql(client: pg.Pool | pg.PoolClient, inTransaction = false): Sql {
  return {
    ...(inTransaction
      ? {
          async copyIn(statement: string, data: Iterable<string>) {
            // Chunks of lines, not one per row: each write is a protocol message.
            await pipeline(Readable.from(batchLines(data), { objectMode: false }), (client as pg.PoolClient).query(copyFrom(statement)));
          },
        }
      : {}),
    async query(text, params = []) {
      const r = await client.query(toPgPlaceholders(text), params);
      return r.rows;
    },
    async execute(text, params = []) {
      const r = await client.query(toPgPlaceholders(text), params);
      return r.rowCount ?? 0;
    },
  };
}

/**
 * Lines written straight into ~256 kB Buffers, UTF-8 encoded once. Joining them into a
 * string first, which the COPY stream then encodes again, copied every batch twice and
 * left a 256 kB string per chunk for the garbage collector.
 */
function* batchLines(lines: Iterable<string>): Generator<Buffer> {
  const SIZE = 256 * 1024;
  let buf = Buffer.allocUnsafe(SIZE);
  let at = 0;
  for (const l of lines) {
    // At most 3 bytes of UTF-8 per UTF-16 unit: a line that might not fit starts a new chunk.
    if (at + l.length * 3 > buf.length) {
      if (at > 0) yield buf.subarray(0, at);
      buf = Buffer.allocUnsafe(Math.max(SIZE, l.length * 3));
      at = 0;
    }
    at += buf.write(l, at);
  }
  if (at > 0) yield buf.subarray(0, at);
}

/**
 * Whether a write goes by the binary protocol (see mysqlSql's execute): one value of 1 kB
 * or more (a record's JSON), or 64 kB of values in all (a batch of small records), not
 * a list of keys.
 */
function carriesLongValues(params: readonly unknown[]): boolean {
  let total = 0;
  for (const v of params) {
    if (typeof v !== 'string') continue;
    if (v.length >= 1024) return true;
    total += v.length;
  }
  return total >= 64 * 1024;
}

function mysqlSql(conn: mariadb.Pool | mariadb.PoolConnection): Sql {
  return {
    async query(text, params = []) {
      const rows = await conn.query({ sql: text, bigIntAsNumber: true, decimalAsNumber: false }, params);
      return Array.isArray(rows) ? [...rows] : [];
    },
    async execute(text, params = []) {
      // Writes carrying long values (record JSON, typed rows as JSON) go by the binary protocol
      // (prepared once per connection and shape, then cached): the values travel as bytes, where
      // the text protocol escapes each one into the statement in JavaScript — megabytes per batch.
      // The rest (DDL, SAVEPOINTs, deletes by key lists of every length) stay on the text protocol:
      // nothing to gain there, and each shape would hold a prepared statement on the server.
      const r = carriesLongValues(params) ? await conn.execute(text, params) : await conn.query(text, params);
      return Number(r.affectedRows ?? 0);
    },
  };
}

/**
 * TLS from the URL, in the spellings users bring from other tools:
 * `ssl=true`, `sslmode=require|verify-ca|verify-full|disable`, Prisma's
 * `sslaccept=strict|accept_invalid_certs`. Any other parameter is refused
 * rather than silently ignored (a dropped `ssl` would mean cleartext).
 */
function mysqlTls(u: URL): mariadb.PoolConfig['ssl'] {
  const known = new Set(['ssl', 'sslmode', 'sslaccept']);
  const unknown = [...u.searchParams.keys()].filter((k) => !known.has(k));
  if (unknown.length) throw new Error(`DATABASE_URL: unsupported parameter(s) ${unknown.join(', ')} (supported: ssl, sslmode, sslaccept)`);
  const ssl = u.searchParams.get('ssl');
  const mode = u.searchParams.get('sslmode');
  const accept = u.searchParams.get('sslaccept');
  if (mode === 'disable' || ssl === 'false') return undefined;
  if (ssl === null && mode === null && accept === null) return undefined;
  if (mode !== null && !['require', 'verify-ca', 'verify-full'].includes(mode)) throw new Error(`DATABASE_URL: sslmode=${mode} is not supported (use disable, require, verify-ca or verify-full)`);
  if (accept !== null && !['strict', 'accept_invalid_certs'].includes(accept)) throw new Error(`DATABASE_URL: sslaccept=${accept} is not supported (use strict or accept_invalid_certs)`);
  // `require` encrypts without checking the certificate, as in libpq.
  return { rejectUnauthorized: !(accept === 'accept_invalid_certs' || mode === 'require') };
}

export function mysqlConfig(url: string, opts: OpenOptions = {}): mariadb.PoolConfig {
  const u = new URL(url);
  return {
    ssl: mysqlTls(u),
    host: u.hostname,
    port: Number(u.port || 3306),
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: u.pathname.replace(/^\//, '') || undefined,
    connectionLimit: opts.poolSize ?? 10,
    acquireTimeout: opts.connectTimeoutMs ?? 10_000,
    connectTimeout: opts.connectTimeoutMs ?? 10_000,
    // Our own statements send Dates as UTC; Prisma's adapter formats its own.
    timezone: 'Z',
    multipleStatements: false,
    // Prepared statements cached per connection (the driver's default is 256): the server's
    // max_prepared_stmt_count (16,382 by default) is shared by every connection of every loader.
    prepareCacheLength: 64,
  };
}

export function openDatabase(url: string, opts: OpenOptions = {}): Database {
  const dialect = dialectOf(url);
  if (dialect === 'postgresql') {
    const pool = new pg.Pool({
      connectionString: url,
      max: opts.poolSize ?? 10,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
    });
    // An idle client losing its server must not crash the process; the next query reconnects.
    pool.on('error', () => {});
    // The pool's 'error' covers idle clients only: a checked-out client (a transaction
    // between two statements, or one Prisma holds) that loses its server emits 'error'
    // itself, and with no listener that kills the process. Its queries fail on their
    // own; the listener only keeps the event from being uncaught.
    pool.on('connect', (client) => client.on('error', () => {}));
    const prisma = new PgClient({ adapter: new PrismaPg(pool) });
    return {
      dialect,
      prisma,
      sql: pgSql(pool),
      async transaction(fn) {
        const client = await pool.connect();
        // A client whose rollback failed is in an unknown state: release(err) destroys it instead of reusing it.
        let broken: Error | undefined;
        try {
          await client.query('BEGIN');
          const out = await fn(pgSql(client, true));
          await client.query('COMMIT');
          return out;
        } catch (err) {
          await client.query('ROLLBACK').catch((e: unknown) => {
            broken = e instanceof Error ? e : new Error(String(e));
          });
          throw err;
        } finally {
          client.release(broken);
        }
      },
      async close() {
        await prisma.$disconnect();
        await pool.end();
      },
    };
  }
  const pool = mariadb.createPool(mysqlConfig(url, opts));
  // The pool emits 'error' for connections it could not create (its typings omit the
  // event); unheard, that is uncaught. Callers get their own errors from their queries.
  (pool as unknown as NodeJS.EventEmitter).on('error', () => {});
  const prisma = new MysqlClient({ adapter: new PrismaMariaDb(pool) }) as unknown as Prisma;
  return {
    dialect,
    prisma,
    sql: mysqlSql(pool),
    async transaction(fn) {
      const conn = await pool.getConnection();
      // A connection dropped mid-transaction emits 'error'; without a listener the driver throws it uncaught.
      const onError = () => {};
      conn.on('error', onError);
      let broken = false;
      try {
        await conn.beginTransaction();
        const out = await fn(mysqlSql(conn));
        await conn.commit();
        return out;
      } catch (err) {
        await conn.rollback().catch(() => (broken = true));
        throw err;
      } finally {
        conn.off('error', onError);
        // One whose rollback failed is not handed to the next batch (release() itself drops a dead one).
        if (broken) conn.destroy();
        else await conn.release().catch(() => {});
      }
    },
    async close() {
      await prisma.$disconnect();
      await pool.end();
    },
  };
}
