import { HTTPError, RequestError, type Got } from 'got';
import { z } from 'zod';
import { AuthError } from '../connector.ts';
import { jsonBody } from '../http.ts';
import { centralAuthError, type OdkAuthorizer } from './odk.auth.ts';

/** A failed ODK Central call, with Central's dotted error code when it sent one (e.g. 401.2, 501.11). */
export class OdkError extends Error {
  override name = 'OdkError';
  constructor(
    message: string,
    readonly status?: number,
    readonly code?: number,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

const Problem = z.object({ code: z.number(), message: z.string() });

/**
 * Turns got's errors into OdkErrors that say what Central said. got's error is not kept
 * as `cause`: its options hold the Authorization header, which must never reach a log.
 * Query strings stay out too (no secrets, but long).
 */
export function odkError(err: unknown, method: string, url: URL): OdkError | AuthError {
  if (err instanceof OdkError || err instanceof AuthError) return err;
  const where = `${method} ${url.pathname}`;
  if (err instanceof HTTPError) {
    const status = err.response.statusCode;
    let problem: z.infer<typeof Problem> | undefined;
    try {
      problem = Problem.parse(JSON.parse(String(err.response.body)));
    } catch {
      /* not Central's JSON error */
    }
    const what = problem ? ` (${problem.code}): ${problem.message}` : '';
    return new OdkError(`ODK Central answered ${status} to ${where}${what}`, status, problem?.code);
  }
  if (err instanceof z.ZodError) return new OdkError(`unexpected response from ODK Central to ${where}: ${z.prettifyError(err)}`, undefined, undefined, { cause: err });
  const message = err instanceof RequestError ? `${err.code}: ${err.message}` : err instanceof Error ? err.message : String(err);
  return new OdkError(`request to ODK Central failed: ${where}: ${message}`);
}

const Feed = z.looseObject({
  value: z.array(z.unknown()),
  '@odata.nextLink': z.string().optional(),
  '@odata.count': z.number().optional(),
});

export interface FeedPage {
  rows: unknown[];
  /** `@odata.count`: rows matching the query in all (when asked with `$count=true`). */
  count?: number;
  /** No `@odata.nextLink`: the walk ends here. */
  last: boolean;
  /** When we read it (ISO). */
  observedAt: string;
}

/** Query string with OData's `$` names kept literal and values percent-encoded (spaces as %20, not +). */
export function odataQuery(params: Record<string, string | undefined>): string {
  return Object.entries(params)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
    .join('&');
}

/**
 * Authenticated JSON requests to one Central server. Retries on network errors,
 * 429 and 5xx come from the shared http client; this adds the one re-login after a 401.
 */
export class OdkClient {
  private readonly prefix: string;

  constructor(
    private readonly http: Got,
    private readonly base: URL,
    private readonly auth: OdkAuthorizer,
  ) {
    this.prefix = base.pathname.replace(/\/+$/, '');
  }

  /** An API path (`/v1/...`, with query) on the configured base URL. */
  url(pathAndQuery: string): URL {
    return new URL(this.prefix + pathAndQuery, this.base.origin);
  }

  /**
   * Central builds `@odata.nextLink` from its configured domain, which may not be the
   * address we use (a proxy, a second name): keep its path and query, send it to our base URL.
   */
  follow(link: string): URL {
    const u = new URL(link, this.base);
    const path = this.prefix && !u.pathname.startsWith(`${this.prefix}/`) ? this.prefix + u.pathname : u.pathname;
    return new URL(path + u.search, this.base.origin);
  }

  /** `as: 'text'` for XML (XForms); JSON otherwise. */
  async get(url: URL, signal?: AbortSignal, as: 'json' | 'text' = 'json'): Promise<unknown> {
    for (let renewed = false; ; renewed = true) {
      const header = await this.auth.header(signal).catch((e: unknown) => {
        throw odkError(e, 'POST', this.url('/v1/sessions'));
      });
      try {
        const res = await this.http.get(url, { headers: { authorization: header }, signal });
        return as === 'text' ? res.body : jsonBody(res);
      } catch (e) {
        if (!renewed && e instanceof HTTPError && e.response.statusCode === 401 && this.auth.rejected(header)) continue;
        // Refused with credentials that just worked (or Basic ones): the same ones would be refused again.
        if (e instanceof HTTPError && (e.response.statusCode === 401 || e.response.statusCode === 403)) {
          throw centralAuthError(e.response.statusCode === 403 ? `ODK Central refused access to ${url.pathname}` : 'ODK Central refused our credentials', this.auth.credential, e);
        }
        throw odkError(e, 'GET', url);
      }
    }
  }

  /** Ends the session (one-off runs, when done). */
  async close(): Promise<void> {
    await this.auth.logout?.();
  }

  /** Pages of an OData collection, following `@odata.nextLink` until it is absent. */
  async *feed(pathAndQuery: string, signal?: AbortSignal): AsyncGenerator<FeedPage> {
    let url: URL | undefined = this.url(pathAndQuery);
    while (url) {
      let body: z.infer<typeof Feed>;
      try {
        body = Feed.parse(await this.get(url, signal));
      } catch (e) {
        throw odkError(e, 'GET', url);
      }
      const observedAt = new Date().toISOString();
      const next = body['@odata.nextLink'];
      url = next ? this.follow(next) : undefined;
      yield { rows: body.value, count: body['@odata.count'], last: !url, observedAt };
    }
  }
}
