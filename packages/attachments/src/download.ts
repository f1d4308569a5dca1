/**
 * Opening one file download as a stream. Redirects are followed by hand: got
 * would forward our headers (the Kobo token, the Central session) to wherever a
 * 3xx points, and Central answers with a 307 to a presigned S3 URL that must
 * never see them.
 */
import type { Got, Request } from 'got';
import type { IncomingMessage } from 'node:http';

export class DownloadError extends Error {
  override name = 'DownloadError';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export interface Opened {
  /** The response body, not yet read (null for a 304). */
  body: Request | null;
  status: number;
  etag: string | null;
  contentType: string | null;
  contentLength: number | null;
}

const REDIRECT = new Set([301, 302, 303, 307, 308]);
const MAX_HOPS = 3;

function once(req: Request): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    req.once('response', resolve);
    req.once('error', reject);
  });
}

/**
 * GET `url` with `headers` (auth, If-None-Match) on its own origin only; a
 * redirect to another origin is followed with no headers at all. Any status
 * other than 2xx/304 is thrown as DownloadError (its body discarded).
 */
export async function openDownload(http: Got, url: URL, headers: Record<string, string>, timeoutMs: number): Promise<Opened> {
  let target = url;
  for (let hop = 0; ; hop++) {
    const sameOrigin = target.origin === url.origin;
    const req = http.stream(target, {
      headers: sameOrigin ? headers : {},
      followRedirect: false,
      throwHttpErrors: false,
      // Whole download, headers to last byte; a failed attempt is retried by the job (a stream cannot be resumed here).
      timeout: { request: timeoutMs },
      retry: { limit: 0 },
    });
    const res = await once(req);
    const status = res.statusCode ?? 0;
    if (REDIRECT.has(status) && res.headers.location) {
      req.destroy();
      if (hop >= MAX_HOPS) throw new DownloadError(`too many redirects from ${url.pathname}`, status);
      target = new URL(res.headers.location, target);
      continue;
    }
    if (status === 304) {
      req.destroy();
      return { body: null, status, etag: header(res, 'etag'), contentType: null, contentLength: null };
    }
    if (status < 200 || status >= 300) {
      req.destroy();
      throw new DownloadError(`GET ${sameOrigin ? target.pathname : `${target.origin}${target.pathname}`} answered ${status}`, status);
    }
    const len = Number(res.headers['content-length']);
    return { body: req, status, etag: header(res, 'etag'), contentType: header(res, 'content-type'), contentLength: Number.isFinite(len) ? len : null };
  }
}

function header(res: IncomingMessage, name: string): string | null {
  const v = res.headers[name];
  return typeof v === 'string' ? v : null;
}
