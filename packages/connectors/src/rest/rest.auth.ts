import type { Got } from 'got';
import { HTTPError } from 'got';
import type { RestAuth } from '@fieldsync/config';
import { AuthError } from '../connector.ts';
import { getPath } from './rest.paths.ts';

/** The auth config's keys to fix when the source refuses us, relative to the source. */
export function credentialKey(auth: RestAuth): string {
  if ('header' in auth) return 'auth.header.value';
  if ('bearer' in auth) return 'auth.bearer';
  if ('basic' in auth) return 'auth.basic.username/password';
  if ('login' in auth) return 'auth.login.username/password';
  return 'auth';
}

const detailOf = (err: HTTPError): string => {
  const body = typeof err.response.body === 'string' ? err.response.body : '';
  return `HTTP ${err.response.statusCode}${body ? `: ${body.slice(0, 200)}` : ''}`;
};

/**
 * The headers that authenticate a request. A login token is fetched on first
 * use, fetched again shortly before it expires (the configured `ttl`, else the
 * answer's `expires_in`), and once more when the API answers 401 anyway (a
 * token revoked early, clocks apart).
 */
export class RestAuthenticator {
  private token: string | undefined;
  private expiresAt = Infinity;
  private loggingIn: Promise<string> | undefined;
  /** Logins done (for logs and tests). */
  logins = 0;

  constructor(
    private readonly auth: RestAuth,
    private readonly http: Got,
    private readonly base: URL,
    private readonly now: () => number = Date.now,
  ) {}

  get canRefresh(): boolean {
    return 'login' in this.auth;
  }

  async headers(signal?: AbortSignal): Promise<Record<string, string>> {
    const a = this.auth;
    if ('header' in a) return { [a.header.name.toLowerCase()]: a.header.value };
    if ('bearer' in a) return { authorization: `Bearer ${a.bearer}` };
    if ('basic' in a) return { authorization: `Basic ${Buffer.from(`${a.basic.username}:${a.basic.password}`).toString('base64')}` };
    if ('login' in a) {
      if (this.token === undefined || this.now() >= this.expiresAt) await this.login(signal);
      return { authorization: `Bearer ${this.token!}` };
    }
    return {};
  }

  /** After a 401: forget the token so the next `headers()` logs in again. */
  invalidate(): void {
    this.token = undefined;
  }

  private login(signal?: AbortSignal): Promise<string> {
    // Concurrent requests share one login.
    this.loggingIn ??= this.doLogin(signal).finally(() => (this.loggingIn = undefined));
    return this.loggingIn;
  }

  private async doLogin(signal?: AbortSignal): Promise<string> {
    if (!('login' in this.auth)) throw new Error('not a login auth');
    const l = this.auth.login;
    let body: unknown;
    try {
      body = await this.http.post(new URL(l.path.replace(/^\//, ''), this.base), { json: { [l.usernameField]: l.username, [l.passwordField]: l.password }, signal }).json();
    } catch (err) {
      if (err instanceof HTTPError && [400, 401, 403].includes(err.response.statusCode)) {
        throw new AuthError('REST login refused', 'auth.login.username/password', detailOf(err), err.response.statusCode);
      }
      throw err;
    }
    const token = getPath(body, l.tokenPath);
    if (typeof token !== 'string' || token === '') throw new Error(`REST login answered without a token at "${l.tokenPath}" (check auth.login.tokenPath)`);
    const started = this.now();
    const expiresIn = getPath(body, l.expiresInPath);
    const ttl = l.ttl ?? (typeof expiresIn === 'number' && expiresIn > 0 ? expiresIn * 1000 : undefined);
    // Renew early, but never so early that a short-lived token is renewed on every request.
    this.expiresAt = ttl === undefined ? Infinity : started + ttl - Math.min(l.refreshBefore, ttl / 2);
    this.token = token;
    this.logins++;
    return token;
  }
}
