/**
 * Where attachment files go: an S3-compatible bucket (multipart upload of a
 * stream, at most queueSize × partSize bytes in memory) or a local directory
 * (streamed to a temp file, then renamed, so a reader never sees half a file).
 */
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { AttachmentStore as StoreConfig } from '@fieldsync/config';

export interface AttachmentStorage {
  /** Streams `body` to `key`; resolves with the stored location (s3://bucket/key, file:///path). */
  put(key: string, body: Readable, contentType?: string | null): Promise<string>;
  /** For messages: the bucket or the directory. */
  readonly describe: string;
  close(): void;
}

/** One key segment: never a path separator or a `..` that could climb out of the prefix. */
export function keySegment(s: string): string {
  const out = s.replace(/[/\\\0]/g, '_');
  return out === '' || out === '.' || out === '..' ? '_' : out;
}

/** <prefix><source>/<form>/<record key>/<file name> */
export function attachmentKey(prefix: string, a: { sourceId: string; formId: string; key: string; name: string }): string {
  return prefix + [a.sourceId, a.formId, a.key, a.name].map(keySegment).join('/');
}

export class S3Storage implements AttachmentStorage {
  readonly describe: string;
  private readonly client: S3Client;
  constructor(private readonly cfg: Extract<StoreConfig, { s3: unknown }>['s3'], timeoutMs = 120_000) {
    this.describe = `s3://${cfg.bucket}/${cfg.prefix}`;
    this.client = new S3Client({
      endpoint: cfg.endpoint,
      region: cfg.region,
      forcePathStyle: cfg.pathStyle,
      credentials: cfg.accessKeyId && cfg.secretAccessKey ? { accessKeyId: cfg.accessKeyId, secretAccessKey: cfg.secretAccessKey } : undefined,
      // Bounded: each part request times out and is retried by the SDK a few times; the job retries the rest.
      maxAttempts: 3,
      requestHandler: { requestTimeout: timeoutMs, connectionTimeout: 10_000 },
      // Many S3-compatible servers refuse the SDK's default trailing checksums on streamed bodies.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }
  async put(key: string, body: Readable, contentType?: string | null): Promise<string> {
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.cfg.bucket, Key: key, Body: body, ...(contentType ? { ContentType: contentType } : {}) },
      queueSize: 2,
      partSize: 8 * 1024 * 1024,
      leavePartsOnError: false,
    });
    await upload.done();
    return `s3://${this.cfg.bucket}/${key}`;
  }
  close(): void {
    this.client.destroy();
  }
}

export class DirStorage implements AttachmentStorage {
  readonly describe: string;
  private readonly root: string;
  constructor(dir: string) {
    this.root = resolve(dir);
    this.describe = this.root;
  }
  async put(key: string, body: Readable): Promise<string> {
    const path = join(this.root, key);
    await mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.${randomBytes(6).toString('hex')}.part`;
    try {
      await pipeline(body, createWriteStream(tmp));
      await rename(tmp, path);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    return pathToFileURL(path).href;
  }
  close(): void {}
}

export function openStorage(cfg: StoreConfig, timeoutMs?: number): AttachmentStorage {
  return 's3' in cfg ? new S3Storage(cfg.s3, timeoutMs) : new DirStorage(cfg.dir);
}
