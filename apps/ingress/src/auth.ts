import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Request } from 'express';
import type { WebhookAuth } from '@fieldsync/config';

/** Constant-time string comparison (no early exit that leaks how much matched). */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function basicCredentials(req: Request): { user: string; password: string } | null {
  const h = req.headers.authorization;
  if (!h || !/^basic /i.test(h)) return null;
  const decoded = Buffer.from(h.slice(6).trim(), 'base64').toString('utf8');
  const i = decoded.indexOf(':');
  return i < 0 ? null : { user: decoded.slice(0, i), password: decoded.slice(i + 1) };
}

/** Checks a webhook's secret before its body is read; HMAC needs the body, see verifySignature. */
export function checkWebhookAuth(auth: WebhookAuth, req: Request): boolean {
  if ('token' in auth) {
    const got = req.headers[auth.header.toLowerCase()];
    return typeof got === 'string' && safeEqual(got, auth.token);
  }
  if ('basic' in auth) {
    const c = basicCredentials(req);
    return !!c && safeEqual(c.user, auth.basic.username) && safeEqual(c.password, auth.basic.password);
  }
  return true; // hmac: checked on the raw body
}

/** `sha256=<hex>` of the raw body under the source's secret. */
export function verifySignature(auth: WebhookAuth, req: Request, body: Buffer): boolean {
  if (!('hmac' in auth)) return true;
  const got = req.headers[auth.hmac.header.toLowerCase()];
  if (typeof got !== 'string') return false;
  const want = `sha256=${createHmac('sha256', auth.hmac.secret).update(body).digest('hex')}`;
  return safeEqual(got, want);
}
