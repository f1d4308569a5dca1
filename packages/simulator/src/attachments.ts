/**
 * Attachment files for the Kobo and ODK simulators: deterministic bytes per
 * file name, and a second HTTP server standing in for S3 presigned URLs (where
 * ODK Central sends a 307 when it keeps blobs in S3).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The bytes of a simulated file: the same name always gives the same 2–40 KB. */
export function attachmentBytes(name: string): Buffer {
  const seed = createHash('sha256').update(`fieldsync-sim:${name}`).digest();
  const size = 2_048 + (seed.readUInt32BE(0) % 38_000);
  const out = Buffer.alloc(size);
  let block = seed;
  for (let off = 0; off < size; off += block.length) {
    block = createHash('sha256').update(block).digest();
    block.copy(out, off);
  }
  return out;
}

export const sha256Hex = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
export const md5Hex = (b: Buffer): string => createHash('md5').update(b).digest('hex');

export interface BlobRequest {
  path: string;
  status: number;
  /** True when the request carried an Authorization header (refused: presigned URLs carry their auth in the query). */
  authorization: boolean;
}

/** A stand-in for S3 presigned GET URLs, on its own host (port). */
export interface BlobHost {
  readonly url: string;
  readonly requests: BlobRequest[];
  /** A one-off URL for these bytes, valid `ttlMs` (default 60 s, like Central's). */
  presign(bytes: Buffer, contentType?: string, ttlMs?: number): string;
  close(): Promise<void>;
}

export async function startBlobHost(o: { host?: string; now?: () => number } = {}): Promise<BlobHost> {
  const now = o.now ?? Date.now;
  const blobs = new Map<string, { bytes: Buffer; contentType: string; expires: number }>();
  const requests: BlobRequest[] = [];
  const server: Server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://blob');
    const entry: BlobRequest = { path: u.pathname, status: 0, authorization: req.headers.authorization !== undefined };
    requests.push(entry);
    res.on('finish', () => (entry.status = res.statusCode));
    const xml = (status: number, code: string, message: string) =>
      res.writeHead(status, { 'content-type': 'application/xml' }).end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`);
    // S3 refuses a presigned URL that also carries an Authorization header.
    if (entry.authorization) return xml(400, 'InvalidArgument', 'Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified');
    const blob = blobs.get(u.searchParams.get('X-Amz-Signature') ?? '');
    if (!blob || u.pathname !== `/bucket/${u.searchParams.get('X-Amz-Signature')}`) return xml(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided.');
    if (now() > blob.expires) return xml(403, 'AccessDenied', 'Request has expired');
    res.writeHead(200, { 'content-type': blob.contentType, 'content-length': blob.bytes.length, etag: `"${md5Hex(blob.bytes)}"` }).end(blob.bytes);
  });
  await new Promise<void>((resolve, reject) => server.listen(0, o.host ?? '127.0.0.1', resolve).once('error', reject));
  const { address, port } = server.address() as AddressInfo;
  const url = `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
  return {
    url,
    requests,
    presign(bytes, contentType = 'application/octet-stream', ttlMs = 60_000) {
      const sig = randomBytes(16).toString('hex');
      blobs.set(sig, { bytes, contentType, expires: now() + ttlMs });
      return `${url}/bucket/${sig}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=${Math.round(ttlMs / 1000)}&X-Amz-Signature=${sig}`;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
    },
  };
}

/** Failures served for given file names: `name` → how many more requests answer `status`. */
export class FileFaults {
  private readonly left = new Map<string, { times: number; status: number }>();
  fail(name: string, times: number, status = 500): void {
    this.left.set(name, { times, status });
  }
  /** The status to answer instead of the file, or undefined to serve it. */
  take(name: string): number | undefined {
    const f = this.left.get(name);
    if (!f || f.times <= 0) return undefined;
    f.times--;
    return f.status;
  }
}
