import { describe, expect, it } from 'vitest';
import { mysqlConfig } from './database.ts';

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
