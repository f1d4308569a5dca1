import { createHmac } from 'node:crypto';
import type { Request } from 'express';
import type { WebhookAuth } from '@fieldsync/config';
// The same Basic-auth helpers as the admin routes'.
import { basicCredentials, safeEqual } from '@fieldsync/admin';

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
