import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * Paths pino blanks out wherever they appear in a log line: credentials in
 * headers, config and URLs must never reach the logs.
 */
export const REDACT_PATHS = [
  'token', '*.token', '*.*.token',
  'password', '*.password', '*.*.password', '*.*.*.password',
  'secret', '*.secret', '*.*.secret',
  'authorization', '*.authorization', '*.*.authorization',
  'headers.authorization', 'headers.cookie', 'headers["x-fieldsync-token"]',
  'req.headers.authorization', 'req.headers.cookie', 'req.headers["x-fieldsync-token"]',
  'DATABASE_URL', 'REDIS_URL', 'ADMIN_PASSWORD',
];

/** Strips user:password from a URL before it is logged. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(invalid url)';
  }
}

export function createLogger(name: string, opts: { level?: string; destination?: pino.DestinationStream } = {}): Logger {
  return pino(
    {
      name,
      level: opts.level ?? process.env.LOG_LEVEL ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { app: name },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    opts.destination,
  );
}
