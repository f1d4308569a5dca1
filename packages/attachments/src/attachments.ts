/**
 * Attachment files, copied once to storage on their own queue: the loader
 * enqueues jobs after a batch commits (enqueueAttachments), the attachment
 * worker downloads each file as a stream, hashes it on the way through and
 * records where it went (the Attachment table).
 */
import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Got } from 'got';
import { z } from 'zod';
import type { FieldsyncConfig, SourceConfig } from '@fieldsync/config';
import { createHttpClient, OdkBasicAuth, OdkSessionAuth, type OdkAuthorizer } from '@fieldsync/connectors';
import type { Database } from '@fieldsync/db';
import { keepDeadLetter } from '@fieldsync/sync';
import type { Logger } from '@fieldsync/logger';
import type { CanonicalSubmission } from '@fieldsync/model';
import { typedTablesFromConfig, type TypedTables } from '@fieldsync/tables';
import {
  AttachmentFile, AttachmentList, QUEUE, createRedis,
  type AttachmentFileData, type AttachmentListData, type Queues, type QueueSettings,
} from '@fieldsync/queues';
import { attachmentSettings, type AttachmentSettings } from './settings.ts';
import { DownloadError, openDownload } from './download.ts';
import { attachmentKey, openStorage, type AttachmentStorage } from './store.ts';

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** BullMQ custom job ids may not contain ':'; a hash also keeps them short. */
function jobId(kind: string, ...parts: string[]): string {
  return `${kind}-${createHash('sha1').update(parts.join('\0')).digest('hex')}`;
}

/** A file job's retries: the source's attempts, on an exponential backoff from `backoffMs`. */
function fileRetries(settings: AttachmentSettings) {
  return { attempts: settings.attempts, backoff: { type: 'exponential' as const, delay: settings.backoffMs, jitter: 0.5 } };
}

/** Kobo `_attachments[]` items, as kpi lists them (extra keys ignored). */
const KoboAttachment = z.object({
  download_url: z.string(),
  filename: z.string(),
  mimetype: z.string().nullish(),
  question_xpath: z.string().nullish(),
  media_file_basename: z.string().nullish(),
  is_deleted: z.boolean().nullish(),
});

/** The file name the record's answer holds: kpi's basename, else the last segment of `filename`. */
function koboName(a: z.infer<typeof KoboAttachment>): string {
  return a.media_file_basename || a.filename.split('/').pop() || a.filename;
}

/**
 * A token goes only to the server it belongs to: a `download_url` on another
 * host (kpi behind a proxy or a second name) is sent to the configured baseUrl.
 */
function onBase(baseUrl: string, url: string): URL {
  const base = new URL(baseUrl);
  const u = new URL(url, base);
  if (u.origin === base.origin) return u;
  return new URL(u.pathname + u.search, base.origin);
}

function odkBase(source: Extract<SourceConfig, { kind: 'odk' }>, formId: string, key: string): string {
  const b = new URL(source.baseUrl);
  return `${b.origin}${b.pathname.replace(/\/+$/, '')}/v1/projects/${source.projectId}/forms/${encodeURIComponent(formId)}/submissions/${encodeURIComponent(key)}/attachments`;
}

export interface EnqueueDeps {
  db: Database;
  queues: Pick<Queues, 'attachments'>;
  config: FieldsyncConfig;
  log: Logger;
}

/**
 * After a batch commits: one job per file not stored yet (Kobo), or one listing
 * job per submission with fewer stored files than Central expects (ODK). Job ids
 * are derived from the file, so a job still pending is not queued twice.
 * Returns the number of jobs added.
 */
export async function enqueueAttachments(deps: EnqueueDeps, stored: CanonicalSubmission[]): Promise<number> {
  const bySource = new Map<string, CanonicalSubmission[]>();
  for (const s of stored) {
    if (s.deleted) continue;
    const list = bySource.get(s.sourceId);
    if (list) list.push(s);
    else bySource.set(s.sourceId, [s]);
  }
  let added = 0;
  for (const [sourceId, subs] of bySource) {
    const source = deps.config.sources.find((s) => s.id === sourceId);
    if (!source || (source.kind !== 'kobo' && source.kind !== 'odk')) continue;
    const settings = attachmentSettings(deps.config, source);
    if (!settings) continue;
    const opts = fileRetries(settings);
    // Collect may still be uploading: list again on a slower backoff than files (6 × backoffMs, 30 s by default).
    const listBackoff = { type: 'exponential' as const, delay: settings.backoffMs * 6, jitter: 0.5 };
    const have = await storedNames(deps.db, sourceId, subs);
    for (const s of subs) {
      const names = have.get(`${s.formId}\0${s.key}`) ?? new Set<string>();
      if (source.kind === 'kobo') {
        const list = Array.isArray(s.data._attachments) ? s.data._attachments : [];
        for (const raw of list) {
          const a = KoboAttachment.safeParse(raw);
          if (!a.success || a.data.is_deleted) continue;
          const name = koboName(a.data);
          if (names.has(name)) continue;
          const data: AttachmentFileData = {
            sourceId, formId: s.formId, key: s.key, name, url: onBase(source.baseUrl, a.data.download_url).href,
            questionPath: a.data.question_xpath ?? null, mimeType: a.data.mimetype ?? null,
          };
          await deps.queues.attachments.add(AttachmentFile.name, data, { ...AttachmentFile.options, ...opts, jobId: jobId('file', sourceId, s.formId, s.key, name) });
          added++;
        }
      } else {
        const sys = (s.data.__system ?? {}) as { attachmentsExpected?: unknown };
        const expected = typeof sys.attachmentsExpected === 'number' ? sys.attachmentsExpected : Number(sys.attachmentsExpected ?? 0);
        if (!(expected > names.size)) continue;
        const data: AttachmentListData = { sourceId, formId: s.formId, key: s.key };
        // Listing jobs are removed when done: a later edit may bring new files and must list again.
        await deps.queues.attachments.add(AttachmentList.name, data, { ...AttachmentList.options, backoff: listBackoff, removeOnComplete: true, jobId: jobId('list', sourceId, s.formId, s.key) });
        added++;
      }
    }
  }
  return added;
}

/** Names already stored per (form, key) for these records. */
async function storedNames(db: Database, sourceId: string, subs: CanonicalSubmission[]): Promise<Map<string, Set<string>>> {
  const rows = await db.prisma.attachment.findMany({
    where: { sourceId, OR: subs.map((s) => ({ formId: s.formId, submissionKey: s.key })) },
    select: { formId: true, submissionKey: true, name: true },
  });
  const out = new Map<string, Set<string>>();
  for (const r of rows) {
    const k = `${r.formId}\0${r.submissionKey}`;
    out.set(k, (out.get(k) ?? new Set()).add(r.name));
  }
  return out;
}

/** Counts bytes and hashes them on their way to storage: nothing is kept. */
class Hasher extends Transform {
  readonly hash = createHash('sha256');
  size = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    cb(null, chunk);
  }
}

/** HTTP and auth per source, made once per worker. */
interface SourceClient {
  http: Got;
  /** Authorization header for the source's own host. */
  auth(): Promise<string>;
  /** A 401 came back with `header`: true when asking again may help (an ODK session renews). */
  rejected(header: string): boolean;
}

function sourceClient(source: SourceConfig, log: Logger): SourceClient {
  if (source.kind !== 'kobo' && source.kind !== 'odk') throw new UnrecoverableError(`source ${source.id} (${source.kind}) has no attachments`);
  const http = createHttpClient({ policy: source.http, logger: log, sourceId: source.id });
  if (source.kind === 'kobo') return { http, auth: async () => `Token ${source.token}`, rejected: () => false };
  const base = new URL(source.baseUrl);
  const authz: OdkAuthorizer =
    'session' in source.auth
      ? new OdkSessionAuth(http, new URL(`${base.pathname.replace(/\/+$/, '')}/v1/sessions`, base.origin), source.auth.session, log, source.id)
      : new OdkBasicAuth(source.auth.basic.email, source.auth.basic.password);
  return { http, auth: () => authz.header(), rejected: (h) => authz.rejected(h) };
}

/** Statuses not worth another attempt: the file is gone or we may not read it. */
function permanent(status: number | undefined): boolean {
  return status !== undefined && status >= 400 && status < 500 && ![401, 408, 425, 429].includes(status);
}

export interface AttachmentWorkerDeps {
  settings: QueueSettings;
  db: Database;
  queues: Pick<Queues, 'attachments' | 'deadLetter'>;
  config: FieldsyncConfig;
  log: Logger;
  /** Files downloaded at once (default: config `attachments.concurrency`, else 4). */
  concurrency?: number;
  /** Storage per source; default opened from config. Tests pass their own. */
  storage?: (sourceId: string) => AttachmentStorage;
  /** Typed tables whose `<question>_stored` cells follow each stored file; null = off; absent = from `config`. */
  tables?: Pick<TypedTables, 'applyKeys'> | null;
}

export type FileOutcome = 'stored' | 'skipped' | 'gone';

/** The attachment queue's processor (file and listing jobs), without the Worker: for tests and the worker below. */
export function createAttachmentProcessor(deps: Omit<AttachmentWorkerDeps, 'settings' | 'concurrency'>) {
  const clients = new Map<string, SourceClient>();
  const stores = new Map<string, AttachmentStorage>();
  const tables = deps.tables !== undefined ? deps.tables : typedTablesFromConfig(deps.config, deps.db.dialect, deps.log);
  const source = (id: string): { src: SourceConfig; settings: AttachmentSettings } => {
    const src = deps.config.sources.find((s) => s.id === id);
    if (!src) throw new UnrecoverableError(`unknown source "${id}" (not in the loader's config)`);
    const settings = attachmentSettings(deps.config, src);
    if (!settings) throw new UnrecoverableError(`attachments are not enabled for source "${id}"`);
    return { src, settings };
  };
  const client = (src: SourceConfig) => {
    let c = clients.get(src.id);
    if (!c) clients.set(src.id, (c = sourceClient(src, deps.log)));
    return c;
  };
  const store = (id: string, settings: AttachmentSettings) => {
    let s = stores.get(id);
    if (!s) stores.set(id, (s = deps.storage ? deps.storage(id) : openStorage(settings.store, settings.timeoutMs)));
    return s;
  };

  /** GET on the source's host with its auth, renewing an ODK session once after a 401. */
  const open = async (c: SourceClient, url: URL, timeoutMs: number, extra: Record<string, string> = {}) => {
    for (let renewed = false; ; renewed = true) {
      const h = await c.auth();
      try {
        return await openDownload(c.http, url, { ...extra, authorization: h }, timeoutMs);
      } catch (err) {
        if (!renewed && err instanceof DownloadError && err.status === 401 && c.rejected(h)) continue;
        throw err;
      }
    }
  };

  const file = async (d: AttachmentFileData): Promise<FileOutcome> => {
    const { src, settings } = source(d.sourceId);
    const where = { sourceId_formId_submissionKey_name: { sourceId: d.sourceId, formId: d.formId, submissionKey: d.key, name: d.name } };
    if (await deps.db.prisma.attachment.findUnique({ where, select: { id: true } })) return 'skipped';
    const c = client(src);
    let opened;
    try {
      opened = await open(c, new URL(d.url), settings.timeoutMs);
    } catch (err) {
      if (err instanceof DownloadError && err.status === 404) {
        // Deleted at the source since the record was read: nothing to copy, nothing to retry.
        deps.log.warn({ sourceId: d.sourceId, formId: d.formId, key: d.key, name: d.name }, 'attachment gone at the source (404)');
        return 'gone';
      }
      if (err instanceof DownloadError && permanent(err.status)) throw new UnrecoverableError(err.message);
      throw err;
    }
    if (!opened.body) throw new Error(`unexpected 304 for ${d.name}`);
    const hasher = new Hasher();
    const key = attachmentKey(settings.store && 's3' in settings.store ? settings.store.s3.prefix : '', d);
    const target = store(d.sourceId, settings);
    // Both sides at once: the download feeds the hasher, storage drains it. Either failing fails both.
    const [, location] = await Promise.all([
      pipeline(opened.body, hasher),
      target.put(key, hasher, d.mimeType ?? opened.contentType),
    ]);
    if (opened.contentLength !== null && opened.contentLength !== hasher.size) throw new Error(`${d.name}: got ${hasher.size} of ${opened.contentLength} bytes`);
    const row = {
      questionPath: d.questionPath, mimeType: d.mimeType ?? opened.contentType, size: BigInt(hasher.size),
      sha256: hasher.hash.digest('hex'), etag: opened.etag, location, storedAt: new Date(),
    };
    await deps.db.prisma.attachment.upsert({ where, create: { sourceId: d.sourceId, formId: d.formId, submissionKey: d.key, name: d.name, ...row }, update: row });
    // The typed row was usually written before the file arrived: rewrite it so it shows the location.
    // The analyst layer never fails a stored file: on error the cell stays empty until the next write or a rebuild.
    await tables?.applyKeys(deps.db, d.sourceId, d.formId, [d.key]).catch((err: unknown) => {
      deps.log.error({ sourceId: d.sourceId, formId: d.formId, key: d.key, err: message(err) }, 'typed tables: stored location not written to the typed row (run tables rebuild)');
    });
    deps.log.debug({ sourceId: d.sourceId, key: d.key, name: d.name, size: hasher.size, location }, 'attachment stored');
    return 'stored';
  };

  const list = async (d: AttachmentListData): Promise<{ queued: number; missing: number }> => {
    const { src, settings } = source(d.sourceId);
    if (src.kind !== 'odk') throw new UnrecoverableError(`attachment listing is for ODK sources; "${d.sourceId}" is ${src.kind}`);
    const c = client(src);
    const base = odkBase(src, d.formId, d.key);
    const opened = await open(c, new URL(base), 60_000, { accept: 'application/json' }).catch((err: unknown) => {
      throw err instanceof DownloadError && permanent(err.status) ? new UnrecoverableError(err.message) : err;
    });
    const chunks: Buffer[] = [];
    for await (const chunk of opened.body ?? []) chunks.push(chunk as Buffer);
    const items = z.array(z.object({ name: z.string().min(1), exists: z.boolean() })).parse(JSON.parse(Buffer.concat(chunks).toString('utf8')));
    const have = (await storedNames(deps.db, d.sourceId, [{ formId: d.formId, key: d.key } as CanonicalSubmission])).get(`${d.formId}\0${d.key}`) ?? new Set();
    const opts = { ...AttachmentFile.options, ...fileRetries(settings) };
    let queued = 0;
    for (const it of items) {
      if (!it.exists || have.has(it.name)) continue;
      const data: AttachmentFileData = { sourceId: d.sourceId, formId: d.formId, key: d.key, name: it.name, url: `${base}/${encodeURIComponent(it.name)}`, questionPath: null, mimeType: null };
      await deps.queues.attachments.add(AttachmentFile.name, data, { ...opts, jobId: jobId('file', d.sourceId, d.formId, d.key, it.name) });
      queued++;
    }
    const missing = items.filter((i) => !i.exists).length;
    // attachmentsPresent < attachmentsExpected: Collect is still uploading. What exists is queued; list again later.
    if (missing > 0) throw new Error(`${missing} of ${items.length} attachment(s) of ${d.key} not uploaded to Central yet; listing again later`);
    return { queued, missing };
  };

  return async (job: Job): Promise<unknown> => {
    try {
      if (job.name === AttachmentList.name) return await list(AttachmentList.payload.parse(job.data));
      if (job.name === AttachmentFile.name) return await file(AttachmentFile.payload.parse(job.data));
      throw new UnrecoverableError(`unknown attachment job "${job.name}"`);
    } catch (err) {
      const final = err instanceof UnrecoverableError || err instanceof z.ZodError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (final) await deadLetterAttachment(deps, job, err);
      throw err instanceof z.ZodError ? new UnrecoverableError(`invalid attachment payload: ${err.message}`) : err;
    }
  };
}

/** One failed file (or listing), kept like any dead letter (row + queue copy); replay puts it back on `attachments`. */
async function deadLetterAttachment(deps: Pick<AttachmentWorkerDeps, 'db' | 'queues' | 'log'>, job: Job, err: unknown): Promise<void> {
  const data = job.data as Partial<AttachmentFileData>;
  const error = message(err);
  const deadLetterId = await keepDeadLetter(deps, job, { sourceId: data.sourceId ?? null, formId: data.formId ?? null, error });
  deps.log.error({ jobId: job.id, deadLetterId, sourceId: data.sourceId, key: data.key, name: data.name, error }, 'attachment dead-lettered');
}

/** The loader's attachment worker: its own queue and concurrency, so media never holds up data. */
export function startAttachmentWorker(deps: AttachmentWorkerDeps): Worker {
  const processor = createAttachmentProcessor(deps);
  const worker = new Worker(QUEUE.attachments, processor, {
    connection: createRedis(deps.settings.redisUrl, 'worker'),
    prefix: deps.settings.prefix,
    concurrency: deps.concurrency ?? deps.config.attachments?.concurrency ?? 4,
    lockDuration: AttachmentFile.lockMs,
  });
  worker.on('error', (err) => deps.log.error({ err: message(err) }, 'attachment worker error'));
  worker.on('failed', (job, err) => deps.log.warn({ jobId: job?.id, attempts: job?.attemptsMade, err: err.message }, 'attachment job attempt failed'));
  return worker;
}
