import { describe, expect, it } from 'vitest';
import { isAccessDenied, isDataError, isUnavailable } from './db-errors.ts';

describe('database error classes', () => {
  it('a refused value is a data error, to be isolated', () => {
    expect(isDataError({ code: '22P05' })).toBe(true); // pg: untranslatable character
    expect(isDataError({ sqlState: '23000', errno: 4025 })).toBe(true); // mariadb: CHECK failed
    expect(isUnavailable({ code: '22P05' })).toBe(false);
  });

  it('a statement over MySQL max_allowed_packet is the batch size, not an outage', () => {
    const tooLarge = { errno: 1153, sqlState: '08S01', code: 'ER_NET_PACKET_TOO_LARGE', fatal: true };
    expect(isDataError(tooLarge)).toBe(true);
    expect(isUnavailable(tooLarge)).toBe(false);
  });

  it('a database that cannot be reached is an outage', () => {
    expect(isUnavailable({ code: 'ECONNREFUSED' })).toBe(true);
    expect(isUnavailable({ code: '57P01' })).toBe(true); // admin shutdown
    expect(isUnavailable({ sqlState: '08S01', fatal: true, errno: 2013 })).toBe(true);
    expect(isDataError({ code: 'ECONNREFUSED' })).toBe(false);
  });

  // Shapes seen with a real server stopped (pg_ctl stop -m fast / mariadbd SIGTERM) under load.
  it('what the drivers throw during a real outage is an outage', () => {
    expect(isUnavailable(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isUnavailable(new Error('Client has encountered a connection error and is not queryable'))).toBe(true);
    expect(isUnavailable({ code: '57P01', message: 'terminating connection due to administrator command' })).toBe(true);
    expect(isUnavailable({ code: '57P03', message: 'the database system is starting up' })).toBe(true);
    expect(isUnavailable({ code: 'ER_CMD_CONNECTION_CLOSED', errno: 45013, sqlState: '08S01', fatal: true })).toBe(true);
    const poolTimeout = { code: 'ER_GET_CONNECTION_TIMEOUT', errno: 45028, sqlState: 'HY000', fatal: false, cause: { code: 'ECONNREFUSED' } };
    expect(isUnavailable(poolTimeout)).toBe(true);
  });

  it("Prisma's wrapped errors are classified by what they wrap", () => {
    const prisma = (code: string, cause: Record<string, unknown>) => Object.assign(new Error('Invalid `prisma.syncRun.count()` invocation'), { name: 'PrismaClientKnownRequestError', code, meta: { driverAdapterError: { name: 'DriverAdapterError', cause } } });
    expect(isUnavailable(prisma('P1001', { kind: 'DatabaseNotReachable', host: '127.0.0.1', port: 5432 }))).toBe(true);
    expect(isUnavailable(prisma('P1017', { kind: 'ConnectionClosed' }))).toBe(true);
    // MariaDB adapter: a generic code, the driver's errno and SQLSTATE inside.
    expect(isUnavailable(prisma('P2039', { kind: 'mysql', code: 45013, message: 'Cannot execute new commands: connection closed', state: '08S01' }))).toBe(true);
    expect(isUnavailable(prisma('P2039', { kind: 'mysql', code: 45028, message: 'pool timeout: failed to retrieve a connection from pool after 2001ms', state: 'HY000', cause: 'connect ECONNREFUSED 127.0.0.1:3306' }))).toBe(true);
    expect(isUnavailable(prisma('P2002', { kind: 'UniqueConstraintViolation' }))).toBe(false);
    expect(isUnavailable(prisma('P2039', { kind: 'mysql', code: 1064, message: 'You have an error in your SQL syntax', state: '42000' }))).toBe(false);
  });

  it('a server that refuses our credentials or database is not an outage (waiting cannot help)', () => {
    const mariadbDenied = { code: 'ER_ACCESS_DENIED_ERROR', errno: 1045, sqlState: '28000', fatal: true, message: "Access denied for user 'x'@'localhost'" };
    expect(isAccessDenied(mariadbDenied)).toBe(true);
    expect(isUnavailable(mariadbDenied)).toBe(false); // although mariadb marks it fatal
    expect(isAccessDenied({ code: '28P01', message: 'password authentication failed for user "x"' })).toBe(true);
    expect(isAccessDenied({ code: '28000', message: 'role "x" does not exist' })).toBe(true);
    expect(isAccessDenied({ code: '3D000', message: 'database "x" does not exist' })).toBe(true);
    expect(isAccessDenied({ name: 'PrismaClientKnownRequestError', code: 'P1000', meta: { driverAdapterError: { cause: { kind: 'AuthenticationFailed', user: 'x' } } } })).toBe(true);
    expect(isAccessDenied({ code: 'ECONNREFUSED' })).toBe(false);
  });
});
