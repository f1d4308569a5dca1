/**
 * Tells a record the database refuses (bad data: retrying the same bytes can
 * never work, so isolate it) from a database that is unavailable (retry the
 * whole batch later, without spending its attempts).
 */
function sqlState(err: unknown): string | undefined {
  const e = err as { code?: unknown; sqlState?: unknown } | null;
  if (!e || typeof e !== 'object') return undefined;
  if (typeof e.sqlState === 'string') return e.sqlState; // mariadb
  if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) return e.code; // pg
  return undefined;
}

/**
 * MySQL's "packet too large" (1153, 1301) comes as a fatal connection error with
 * SQLSTATE 08S01, but it is the statement's size: smaller pieces will go through.
 */
function isTooLarge(err: unknown): boolean {
  const e = err as { errno?: unknown; code?: unknown } | null;
  return !!e && typeof e === 'object' && (e.errno === 1153 || e.errno === 1301 || e.code === 'ER_NET_PACKET_TOO_LARGE');
}

/** SQLSTATE class 22 (data exception) or 23 (integrity constraint violation), or a statement too large. */
export function isDataError(err: unknown): boolean {
  if (isTooLarge(err)) return true;
  const s = sqlState(err);
  return s !== undefined && (s.startsWith('22') || s.startsWith('23'));
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'ER_GET_CONNECTION_TIMEOUT', 'ER_CONNECTION_TIMEOUT', 'ER_SOCKET_UNEXPECTED_CLOSE', 'ER_CONNECTION_ALREADY_CLOSED']);

/** The database could not be reached or dropped us: nothing is wrong with the batch. */
export function isUnavailable(err: unknown): boolean {
  const e = err as { code?: unknown; errno?: unknown; fatal?: unknown; message?: unknown } | null;
  if (!e || typeof e !== 'object' || isTooLarge(err)) return false;
  if (typeof e.code === 'string' && CONNECTION_CODES.has(e.code)) return true;
  const s = sqlState(err);
  // 08: connection exception; 57P01-03: admin shutdown / crash / cannot connect now; 53: insufficient resources.
  if (s && (s.startsWith('08') || s.startsWith('57P') || s.startsWith('53'))) return true;
  if (e.fatal === true) return true; // mariadb marks connection-level failures fatal
  const msg = typeof e.message === 'string' ? e.message : '';
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|pool is closed|retrieve connection from pool timeout/i.test(msg);
}
