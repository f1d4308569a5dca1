import got, { type Got, type RequestError, type Response, type RetryObject } from 'got';
import type { HttpPolicy } from '@fieldsync/config';
import type { Logger } from '@fieldsync/logger';

/**
 * Statuses worth another try; everything else fails at once — 401/403 above all:
 * refused credentials are not transient (the connectors turn them into AuthError),
 * and retrying a refused login only fills the server's log with failed logins.
 */
export const RETRY_STATUS = [408, 425, 429, 500, 502, 503, 504, 521, 522, 524];

/** Longest Retry-After we wait out; a server asking for more fails the request (and the poll retries later). */
export const MAX_RETRY_AFTER_MS = 10 * 60_000;

/**
 * Exponential backoff with jitter, capped at maxBackoffMs. A server's
 * Retry-After is obeyed as given (retrying earlier only earns another 429).
 */
export function backoffDelay(policy: HttpPolicy, attempt: number, retryAfterMs?: number): number {
  if (retryAfterMs !== undefined && Number.isFinite(retryAfterMs)) return Math.min(Math.max(retryAfterMs, 0), MAX_RETRY_AFTER_MS);
  const ceiling = Math.min(policy.backoffMs * 2 ** Math.max(attempt - 1, 0), policy.maxBackoffMs);
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

/** A source's base URL with a trailing slash, so relative paths resolve beneath it rather than beside it. */
export function baseUrl(url: string): URL {
  return new URL(url.endsWith('/') ? url : `${url}/`);
}

/**
 * A response that should be JSON, parsed, with an error naming the path and the
 * body's start when it is not (an HTML login page, a proxy's error page). Read the
 * body as text and parse it here, not with got's `.json()`: that decodes the bytes a
 * second time (its response handler already made the text): ~5 µs a record, a
 * tenth of a poller's CPU in a backfill.
 */
export function jsonBody(res: Pick<Response<string>, 'body' | 'url'>): unknown {
  if (res.body === '') return ''; // what `.json()` gives for an empty body: the caller's schema says what was wanted
  try {
    return JSON.parse(res.body);
  } catch (e) {
    throw new Error(`the answer from ${new URL(res.url).pathname} is not JSON: ${JSON.stringify(res.body.slice(0, 100))}`, { cause: e });
  }
}

export interface HttpClientOptions {
  policy: HttpPolicy;
  logger?: Logger;
  headers?: Record<string, string>;
  /** For logs only. */
  sourceId?: string;
  /** Called once per request attempt (retries included) with its status code, or 'error' when no response came: for metrics. */
  onResponse?: (status: string) => void;
}

/**
 * The one HTTP client every connector uses: a timeout on every request,
 * bounded retries on network errors and retryable statuses (POST included:
 * our POSTs are logins, safe to repeat), Retry-After respected.
 */
export function createHttpClient(o: HttpClientOptions): Got {
  const { policy, logger, onResponse } = o;
  // Responses (any status) pass afterResponse; attempts that got none end in beforeRetry or, the last one, beforeError.
  const noResponse = (error: RequestError) => {
    if (!error.response && error.code !== 'ERR_ABORTED') onResponse?.('error');
    return error;
  };
  return got.extend({
    headers: { 'user-agent': 'fieldsync', ...o.headers },
    hooks: onResponse
      ? {
          afterResponse: [(response) => (onResponse(String(response.statusCode)), response)],
          beforeRetry: [(error) => void noResponse(error)],
          beforeError: [noResponse],
        }
      : {},
    timeout: { request: policy.timeoutMs },
    retry: {
      limit: policy.retries,
      methods: ['GET', 'POST', 'HEAD', 'OPTIONS'],
      statusCodes: RETRY_STATUS,
      // got gives up at once on a Retry-After above this; we wait out anything up to 10 minutes.
      maxRetryAfter: MAX_RETRY_AFTER_MS,
      calculateDelay: ({ attemptCount, computedValue, retryAfter, error }: RetryObject) => {
        if (computedValue === 0) return 0; // got decided: not retryable, or attempts spent
        const delay = backoffDelay(policy, attemptCount, retryAfter);
        logger?.warn(
          { sourceId: o.sourceId, attempt: attemptCount, delayMs: delay, status: error.response?.statusCode, code: error.code, url: error.options?.url?.toString().replace(/\?.*/, '') },
          'source request failed; retrying',
        );
        return delay;
      },
    },
  });
}
