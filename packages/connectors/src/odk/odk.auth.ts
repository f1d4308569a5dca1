import type { Got } from 'got';
import { z } from 'zod';
import type { Logger } from '@fieldsync/logger';

/** Supplies the Authorization header of every ODK Central request. */
export interface OdkAuthorizer {
  header(signal?: AbortSignal): Promise<string>;
  /**
   * A request sent with `header` got a 401. True when trying again may help (a
   * session can be renewed); the next `header()` then logs in anew.
   */
  rejected(header: string): boolean;
}

/** HTTP Basic: Central accepts it only over HTTPS (config load refuses it on http://) and bcrypts every request, so it is the fallback. */
export class OdkBasicAuth implements OdkAuthorizer {
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

  private async login(signal?: AbortSignal): Promise<string> {
    const sentAt = Date.now();
    const body = SessionBody.parse(await this.http.post(this.loginUrl, { json: this.credentials, signal }).json());
    // Lifetime from the server's own two timestamps, deadline on our clock: clock skew cannot
    // make us use a dead token. Renew a tenth of the lifetime early (at most 5 minutes).
    const lifetime = Date.parse(body.expiresAt) - Date.parse(body.createdAt);
    const header = `Bearer ${body.token}`;
    this.current = { header, renewAt: sentAt + lifetime - Math.min(lifetime / 10, 300_000) };
    this.logger?.debug({ sourceId: this.sourceId, expiresAt: body.expiresAt }, 'ODK Central session opened');
    return header;
  }
}
