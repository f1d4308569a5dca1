import { describe, expect, it } from 'vitest';
import { mysqlConfig, openDatabase } from './database.ts';
import { Cable, TEST_SERVERS, createTestDatabase } from './testing.ts';

describe('MySQL connection settings from DATABASE_URL', () => {
  it('reads host, port, credentials and database', () => {
    expect(mysqlConfig('mysql://u%40x:p%3Aw@db.example:3307/fieldsync')).toMatchObject({ host: 'db.example', port: 3307, user: 'u@x', password: 'p:w', database: 'fieldsync', ssl: undefined });
  });

  it('turns on TLS in the spellings other tools use, verifying certificates unless told not to', () => {
    expect(mysqlConfig('mysql://u@h/db?ssl=true').ssl).toEqual({ rejectUnauthorized: true });
    expect(mysqlConfig('mysql://u@h/db?sslmode=verify-full').ssl).toEqual({ rejectUnauthorized: true });
    expect(mysqlConfig('mysql://u@h/db?sslaccept=strict').ssl).toEqual({ rejectUnauthorized: true });
    expect(mysqlConfig('mysql://u@h/db?sslmode=require').ssl).toEqual({ rejectUnauthorized: false });
    expect(mysqlConfig('mysql://u@h/db?sslaccept=accept_invalid_certs').ssl).toEqual({ rejectUnauthorized: false });
    expect(mysqlConfig('mysql://u@h/db?sslmode=disable').ssl).toBeUndefined();
  });

  it('refuses parameters it would otherwise silently ignore', () => {
    expect(() => mysqlConfig('mysql://u@h/db?sslcert=/x.pem')).toThrow(/DATABASE_URL: unsupported parameter\(s\) sslcert/);
    expect(() => mysqlConfig('mysql://u@h/db?sslmode=prefer')).toThrow(/sslmode=prefer is not supported/);
  });
});


describe('MySQL writes and the binary protocol', () => {
  it('a write carrying long values is prepared (binary protocol); short writes and DDL are not, so they hold no server statement', async () => {
    const t = await createTestDatabase('mysql');
    try {
      await t.db.transaction(async (sql) => {
        const prepared = async () => Number((await sql.query<{ Value: string }>("SHOW SESSION STATUS LIKE 'Com_stmt_prepare'"))[0]!.Value);
        const p0 = await prepared();
        await sql.execute('CREATE TEMPORARY TABLE fs_probe (k VARCHAR(10), v LONGTEXT)');
        await sql.execute('INSERT INTO fs_probe (k, v) VALUES (?, ?), (?, ?)', ['a', 'short', 'b', "it's \\\\ short"]);
        await sql.execute('DELETE FROM fs_probe WHERE k IN (?)', ['a']);
        expect(await prepared()).toBe(p0);
        const long = `{"q": "${'x'.repeat(2000)}", "quote": "it's \\\\"}`;
        await sql.execute('INSERT INTO fs_probe (k, v) VALUES (?, ?)', ['c', long]);
        expect(await prepared()).toBe(p0 + 1);
        // Many short values (a batch of small records) add up: prepared too.
        const many = Array.from({ length: 300 }, (_, i) => [`m${i}`, 'y'.repeat(300)]);
        await sql.execute(`INSERT INTO fs_probe (k, v) VALUES ${many.map(() => '(?, ?)').join(', ')}`, many.flat());
        expect(await prepared()).toBe(p0 + 2);
        await sql.execute("DELETE FROM fs_probe WHERE k LIKE 'm%'");
        // Both protocols store the values exactly.
        expect(await sql.query('SELECT k, v FROM fs_probe ORDER BY k')).toEqual([{ k: 'b', v: "it's \\\\ short" }, { k: 'c', v: long }]);
      });
    } finally {
      await t.drop();
    }
  });
});

describe.each([['postgresql', 5432], ['mysql', 3306]] as const)('a connection lost inside a transaction on %s', (dialect, port) => {
  it('fails that transaction only: nothing uncaught, and the broken connection is not handed out again', async () => {
    const crashes: unknown[] = [];
    const onCrash = (err: unknown) => crashes.push(err);
    process.on('uncaughtException', onCrash);
    const hop = new Cable(port);
    await hop.plug();
    const u = new URL(TEST_SERVERS[dialect]);
    u.port = String(hop.port);
    const db = openDatabase(u.toString(), { poolSize: 1, connectTimeoutMs: 2_000 });
    try {
      // Between two statements of the transaction, the connection goes.
      const lost = db.transaction(async (sql) => {
        await sql.query('SELECT 1 AS one');
        await hop.cut();
        await new Promise((r) => setTimeout(r, 200));
        await sql.query('SELECT 2 AS two');
      });
      await expect(lost).rejects.toThrow();
      await hop.plug();
      // Pool of one: this works only if the dead connection was dropped, not reused.
      await expect(db.transaction((sql) => sql.query<{ n: unknown }>('SELECT 3 AS n'))).resolves.toEqual([{ n: 3 }]);
      await expect(db.prisma.$queryRawUnsafe('SELECT 4 AS n')).resolves.toHaveLength(1);
      expect(crashes.map(String)).toEqual([]);
    } finally {
      process.off('uncaughtException', onCrash);
      await db.close().catch(() => {});
      await hop.cut().catch(() => {});
    }
  });
});
