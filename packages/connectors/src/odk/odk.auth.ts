import { HTTPError, type Got } from 'got';
import { z } from 'zod';
import type { Logger } from '@fieldsync/logger';
import { AuthError } from '../connector.ts';

/** Supplies the Authorization header of every ODK Central request. */
export interface OdkAuthorizer {
  header(signal?: AbortSignal): Promise<string>;
  /**
   * A request sent with `header` got a 401. True when trying again may help (a
   * session can be renewed); the next `header()` then logs in anew.
   */
  rejected(header: string): boolean;
  /** The config keys that hold these credentials, for messages ("auth.session.email/password"). */
  readonly credential: string;
  /** Ends the session, if there is one (best effort). */
  logout?(): Promise<void>;
}

/** An AuthError from Central's `{code, message}` answer, e.g. "401.2: Could not authenticate…". */
export function centralAuthError(what: string, credential: string, err: HTTPError): AuthError {
  const status = err.response.statusCode;
  try {
    const p = JSON.parse(String(err.response.body)) as { code?: unknown; message?: unknown };
    if (typeof p.code === 'number') return new AuthError(what, credential, `${p.code}: ${typeof p.message === 'string' ? p.message : ''}`, status, p.code);
  } catch {
    /* not Central's JSON error */
  }
  return new AuthError(what, credential, String(status), status);
}

/** HTTP Basic: Central accepts it only over HTTPS (config load refuses it on http://) and bcrypts every request, so it is the fallback. */
export class OdkBasicAuth implements OdkAuthorizer {
  readonly credential = 'auth.basic.email/password';
  private readonly value: string;
  constructor(email: string, password: string) {
    this.value = `Basic ${Buffer.from(`${email}:${password}`, 'utf8').toString('base64')}`;
  }
  async header(): Promise<string> {
    return this.value;
  }
  rejected(): boolean {
    return false; // the same credentials would be refused again
  }
}

const SessionBody = z.object({
  token: z.string().min(1),
  createdAt: z.iso.datetime({ offset: true }),
  expiresAt: z.iso.datetime({ offset: true }),
});

/**
 * A web-user session (`POST /v1/sessions`), logged in lazily, renewed before it
 * expires and once more whenever Central answers 401 (expired or revoked early).
 */
export class OdkSessionAuth implements OdkAuthorizer {
  readonly credential = 'auth.session.email/password';
  private current?: { header: string; renewAt: number };
  private pending?: Promise<string>;

  constructor(
    private readonly http: Got,
    private readonly loginUrl: URL,
    private readonly credentials: { email: string; password: string },
    private readonly logger?: Logger,
    private readonly sourceId?: string,
  ) {}

  async header(signal?: AbortSignal): Promise<string> {
    if (this.current && Date.now() < this.current.renewAt) return this.current.header;
    // Concurrent requests share one login.
    this.pending ??= this.login(signal).finally(() => (this.pending = undefined));
    return this.pending;
  }

  rejected(header: string): boolean {
    // Only forget the session the failed request used: another request may already have renewed it.
    if (this.current?.header === header) this.current = undefined;
    return true;
  }

  /** `DELETE /v1/sessions/current`: a one-off run leaves no live token behind. Never throws. */
  async logout(): Promise<void> {
    const session = this.current;
    this.current = undefined;
    if (!session) return;
    try {
      await this.http.delete(new URL(`${this.loginUrl.pathname}/current`, this.loginUrl.origin), { headers: { authorization: session.header } });
      this.logger?.debug({ sourceId: this.sourceId }, 'ODK Central session closed');
    } catch (e) {
      // It expires by itself within 24 h; nothing to retry for.
      this.logger?.warn({ sourceId: this.sourceId, err: e instanceof HTTPError ? e.response.statusCode : (e as Error).message }, 'could not log the ODK Central session out');
    }
  }

  private async login(signal?: AbortSignal): Promise<string> {
    const sentAt = Date.now();
    let answer: unknown;
    try {
      // The http policy never retries a 401/403 (not in RETRY_STATUS): one refused login per call.
      answer = await this.http.post(this.loginUrl, { json: this.credentials, signal }).json();
    } catch (e) {
      if (e instanceof HTTPError && (e.response.statusCode === 401 || e.response.statusCode === 403)) {
        throw centralAuthError('ODK login refused', this.credential, e);
      }
      throw e;
    }
    const body = SessionBody.parse(answer);
    // Lifetime from the server's own two timestamps, deadline on our clock: clock skew cannot
    // make us use a dead token. Renew a tenth of the lifetime early (at most 5 minutes).
    const lifetime = Date.parse(body.expiresAt) - Date.parse(body.createdAt);
    const header = `Bearer ${body.token}`;
    this.current = { header, renewAt: sentAt + lifetime - Math.min(lifetime / 10, 300_000) };
    this.logger?.debug({ sourceId: this.sourceId, expiresAt: body.expiresAt }, 'ODK Central session opened');
    return header;
  }
}
