import got, { type Got, type RetryObject } from 'got';
import type { HttpPolicy } from '@fieldsync/config';
import type { Logger } from '@fieldsync/logger';

/** Statuses worth another try; everything else fails at once. */
export const RETRY_STATUS = [408, 425, 429, 500, 502, 503, 504, 521, 522, 524];

/** Exponential backoff with full jitter, capped; a server's Retry-After wins when given. */
export function backoffDelay(policy: HttpPolicy, attempt: number, retryAfterMs?: number): number {
  if (retryAfterMs !== undefined && Number.isFinite(retryAfterMs)) return Math.min(Math.max(retryAfterMs, 0), policy.maxBackoffMs);
  const ceiling = Math.min(policy.backoffMs * 2 ** Math.max(attempt - 1, 0), policy.maxBackoffMs);
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

export interface HttpClientOptions {
  policy: HttpPolicy;
  logger?: Logger;
  headers?: Record<string, string>;
  /** For logs only. */
  sourceId?: string;
}

/**
 * The one HTTP client every connector uses: a timeout on every request,
 * bounded retries on network errors and retryable statuses (POST included:
 * our POSTs are logins, safe to repeat), Retry-After respected.
 */
export function createHttpClient(o: HttpClientOptions): Got {
  const { policy, logger } = o;
  return got.extend({
    headers: { 'user-agent': 'fieldsync', ...o.headers },
    timeout: { request: policy.timeoutMs },
    retry: {
      limit: policy.retries,
      methods: ['GET', 'POST', 'HEAD', 'OPTIONS'],
      statusCodes: RETRY_STATUS,
      maxRetryAfter: policy.maxBackoffMs,
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
