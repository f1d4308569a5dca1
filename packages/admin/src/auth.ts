import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';

export interface Credentials {
  user: string;
  password: string;
}
export type Role = 'admin' | 'readonly';

export interface AdminLocals {
  role: Role;
  user: string;
  /** This browser session's CSRF token (forms and the X-CSRF-Token header). */
  csrf: string;
}

/** Constant-time string comparison (no early exit that leaks how much matched). */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The user and password of a Basic `Authorization` header, or null. */
export function basicCredentials(req: Request): Credentials | null {
  const h = req.headers.authorization;
  if (!h || !/^basic /i.test(h)) return null;
  const decoded = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  return i < 0 ? null : { user: decoded.slice(0, i), password: decoded.slice(i + 1) };
}

export const SESSION_COOKIE = 'fieldsync_admin_sid';

function cookie(req: Request, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return decodeURIComponent(v.join('='));
  }
  return undefined;
}

/**
 * Basic auth for the admin and the optional read-only account, then a CSRF
 * session: a browser sends cached Basic credentials with any cross-site form
 * post, so every POST must also carry a token that only a same-origin page
 * can read. The token is HMAC(secret, user + session id), the session id a
 * random cookie (SameSite=Strict); the secret derives from the admin password,
 * so replicas agree and no extra setting is needed.
 */
export function adminAuth(accounts: { admin: Credentials; readonly?: Credentials }, cookiePath: string) {
  const secret = createHmac('sha256', accounts.admin.password).update('fieldsync admin csrf v1').digest();
  const tokenFor = (user: string, sid: string) => createHmac('sha256', secret).update(`${user}\u0000${sid}`).digest('base64url');
  return (req: Request, res: Response, next: NextFunction) => {
    const c = basicCredentials(req);
    let role: Role | undefined;
    if (c && safeEqual(c.user, accounts.admin.user) && safeEqual(c.password, accounts.admin.password)) role = 'admin';
    else if (c && accounts.readonly && safeEqual(c.user, accounts.readonly.user) && safeEqual(c.password, accounts.readonly.password)) role = 'readonly';
    if (!role || !c) {
      return void res.set('www-authenticate', 'Basic realm="fieldsync admin"').status(401).json({ error: 'unauthorized', message: 'admin credentials required' });
    }
    let sid = cookie(req, SESSION_COOKIE);
    if (!sid || !/^[A-Za-z0-9_-]{22,64}$/.test(sid)) {
      sid = randomBytes(18).toString('base64url');
      res.append('set-cookie', `${SESSION_COOKIE}=${sid}; Path=${cookiePath}; HttpOnly; SameSite=Strict`);
      // A POST without a session cookie cannot carry a matching token: refused below.
      (req as Request & { newSession?: boolean }).newSession = true;
    }
    const locals: AdminLocals = { role, user: c.user, csrf: tokenFor(c.user, sid) };
    res.locals.admin = locals;
    if (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS') return next();

    if (role !== 'admin') return void res.status(403).json({ error: 'read_only', message: 'this account is read-only' });
    // Browsers say where a request comes from; a cross-site one is refused before its token is even looked at.
    const site = req.headers['sec-fetch-site'];
    if (typeof site === 'string' && site !== 'same-origin' && site !== 'none') return void res.status(403).json({ error: 'cross_site', message: `cross-site request refused (Sec-Fetch-Site: ${site})` });
    const origin = req.headers.origin;
    if (typeof origin === 'string' && origin !== 'null') {
      const host = URL.canParse(origin) ? new URL(origin).host : '';
      if (host !== req.headers.host) return void res.status(403).json({ error: 'cross_site', message: `cross-origin request refused (Origin: ${origin})` });
    } else if (origin === 'null') return void res.status(403).json({ error: 'cross_site', message: 'opaque origin refused' });
    // Bull Board's own UI cannot send our token; its writes are PUT/PATCH/DELETE or JSON POSTs, which a
    // cross-site page can only send after a CORS preflight we never grant (a plain form cannot).
    if (req.path.startsWith('/queues/') && (req.method !== 'POST' || req.is('application/json'))) return next();
    const body = req.body as Record<string, unknown> | undefined;
    const sent = req.headers['x-csrf-token'] ?? (typeof body?._csrf === 'string' ? body._csrf : undefined);
    if ((req as Request & { newSession?: boolean }).newSession || typeof sent !== 'string' || !safeEqual(sent, locals.csrf)) {
      return void res.status(403).json({ error: 'csrf', message: 'missing or wrong CSRF token: reload the page (API clients: GET /admin/api/csrf with a cookie jar)' });
    }
    next();
  };
}
