/**
 * Tells a record the database refuses (bad data: retrying the same bytes can
 * never work, so isolate it) from a database that is unavailable (retry the
 * whole batch later, without spending its attempts), and both from a database
 * that refuses *us* (wrong credentials or database name: waiting cannot help).
 *
 * Errors come raw from node-postgres / mariadb (our SQL) or wrapped by Prisma
 * (PrismaClientKnownRequestError P1001…, with the driver adapter's view of the
 * cause under `meta.driverAdapterError.cause`), so every test looks at the
 * whole chain.
 */

/** One link of an error chain, in the fields the drivers use. */
interface Link {
  code?: unknown;
  errno?: unknown;
  sqlState?: unknown;
  fatal?: unknown;
  message?: unknown;
  /** Prisma driver adapter's classification, e.g. DatabaseNotReachable. */
  kind?: unknown;
  name?: unknown;
}

/** The error, its `cause`s, and Prisma's adapter error (as a driver error) if any. */
function chain(err: unknown): Link[] {
  const out: Link[] = [];
  let e = err as (Link & { cause?: unknown; meta?: { driverAdapterError?: { cause?: Record<string, unknown> } } }) | null;
  for (let depth = 0; e && typeof e === 'object' && depth < 6; depth++) {
    out.push(e);
    const adapter = e.meta?.driverAdapterError?.cause;
    if (adapter && typeof adapter === 'object') {
      // kind 'postgres': { code: SQLSTATE }; kind 'mysql': { code: errno, state: SQLSTATE, cause: 'connect ECONNREFUSED …' }.
      const mysql = adapter.kind === 'mysql';
      out.push({
        kind: adapter.kind,
        code: mysql ? undefined : adapter.code,
        errno: mysql ? adapter.code : undefined,
        sqlState: mysql ? adapter.state : undefined,
        message: [adapter.message, adapter.cause].filter((m) => typeof m === 'string').join(': '),
      });
    }
    e = e.cause as typeof e;
  }
  return out;
}

function sqlStateOf(e: Link): string | undefined {
  if (typeof e.sqlState === 'string' && e.sqlState !== 'N/A') return e.sqlState; // mariadb
  if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) return e.code; // pg
  return undefined;
}

/**
 * MySQL's "packet too large" (1153, 1301) comes as a fatal connection error with
 * SQLSTATE 08S01, but it is the statement's size: smaller pieces will go through.
 */
function isTooLarge(err: unknown): boolean {
  return chain(err).some((e) => e.errno === 1153 || e.errno === 1301 || e.code === 'ER_NET_PACKET_TOO_LARGE');
}

/** SQLSTATE class 22 (data exception) or 23 (integrity constraint violation), or a statement too large. */
export function isDataError(err: unknown): boolean {
  if (isTooLarge(err)) return true;
  const e = err as Link | null;
  if (!e || typeof e !== 'object') return false;
  const s = sqlStateOf(e);
  return s !== undefined && (s.startsWith('22') || s.startsWith('23'));
}

/** MySQL: access denied (1044, 1045, 1698), unknown database (1049). */
const REFUSED_ERRNOS = new Set([1044, 1045, 1698, 1049]);
/** PostgreSQL: invalid authorization (28000, 28P01), no such database (3D000). */
const REFUSED_STATES = new Set(['28000', '28P01', '3D000']);
const REFUSED_KINDS = new Set(['AuthenticationFailed', 'DatabaseAccessDenied', 'DatabaseDoesNotExist']);

/**
 * The server answered and refused us: wrong user or password, no access, no
 * such database. Not an outage — it will say the same until the config changes.
 */
export function isAccessDenied(err: unknown): boolean {
  return chain(err).some(
    (e) =>
      (typeof e.errno === 'number' && REFUSED_ERRNOS.has(e.errno)) ||
      REFUSED_STATES.has(sqlStateOf(e) ?? '') ||
      REFUSED_KINDS.has(String(e.kind)) ||
      e.code === 'ER_ACCESS_DENIED_ERROR' || e.code === 'ER_DBACCESS_DENIED_ERROR' || e.code === 'ER_BAD_DB_ERROR',
  );
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH',
  'ER_GET_CONNECTION_TIMEOUT', 'ER_CONNECTION_TIMEOUT', 'ER_SOCKET_UNEXPECTED_CLOSE', 'ER_CONNECTION_ALREADY_CLOSED',
  'ER_CMD_CONNECTION_CLOSED', 'ER_SOCKET', 'ER_SOCKET_TIMEOUT', 'ER_POOL_NO_CONNECTION', 'ER_POOL_NOT_INITIALIZED',
  // Prisma: can't reach / timed out / server closed the connection / pool timeout / too many connections.
  'P1001', 'P1002', 'P1008', 'P1017', 'P2024', 'P2037',
]);
/**
 * mariadb's own (45xxx: connection closed, socket, timeouts, pool could not connect) and
 * the server's (2006 gone away, 2013 lost, 1053 shutdown in progress, 1927 connection
 * killed, 1040 too many connections) — as Prisma's adapter reports them, by number.
 */
const CONNECTION_ERRNOS = new Set([45001, 45009, 45012, 45013, 45019, 45026, 45028, 45060, 45061, 2002, 2003, 2006, 2013, 1040, 1053, 1927]);
const CONNECTION_KINDS = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections']);
const CONNECTION_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|pool is closed|retrieve connection from pool timeout|failed to retrieve a connection from pool|connection closed|ECONNREFUSED|ECONNRESET|terminating connection due to administrator command|the database system is (shutting down|starting up)/i;

/** The database could not be reached or dropped us: nothing is wrong with the batch. */
export function isUnavailable(err: unknown): boolean {
  if (!err || typeof err !== 'object' || isTooLarge(err) || isAccessDenied(err)) return false;
  return chain(err).some((e) => {
    if (typeof e.code === 'string' && CONNECTION_CODES.has(e.code)) return true;
    if (typeof e.errno === 'number' && CONNECTION_ERRNOS.has(e.errno)) return true;
    if (CONNECTION_KINDS.has(String(e.kind))) return true;
    const s = sqlStateOf(e);
    // 08: connection exception; 57P01-03: admin shutdown / crash / cannot connect now; 53: insufficient resources.
    if (s && (s.startsWith('08') || s.startsWith('57P') || s.startsWith('53'))) return true;
    if (e.fatal === true) return true; // mariadb marks connection-level failures fatal
    return typeof e.message === 'string' && CONNECTION_MESSAGES.test(e.message);
  });
}
