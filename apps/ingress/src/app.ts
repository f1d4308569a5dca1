import express, { type NextFunction, type Request, type Response } from 'express';
import { createAdminRouter, type Credentials } from '@fieldsync/admin';
import type { Database } from '@fieldsync/db';
import type { Redis } from 'ioredis';
import type { FieldsyncConfig } from '@fieldsync/config';
import { WEBHOOK_PARSERS, WebhookBodyError, readWebhookBody, webhookFormat } from '@fieldsync/connectors';
import { IngestBatch, JobBatcher, UnparsedWebhook, combineIngestBatches, ingestJobOptions, type Combinable, type Queues } from '@fieldsync/queues';
import type { Logger } from '@fieldsync/logger';
import { checkWebhookAuth, verifySignature } from './auth.ts';
import type { Metrics } from './metrics.ts';

export interface IngressDeps {
  config: FieldsyncConfig;
  queues: Queues;
  redis: Redis;
  log: Logger;
  metrics: Metrics;
  bodyLimit?: string;
  /** Admin credentials (status page, admin API, Bull Board under /admin); all off without them. */
  admin?: Credentials;
  /** An account that sees /admin but changes nothing. */
  adminReadonly?: Credentials;
  /**
   * The database for the admin routes only (webhooks never touch it), opened on
   * first use; without it, or while it is down, admin routes answer 503.
   */
  db?: () => Database;
  /** True once shutdown began: answers carry `Connection: close` and readiness fails. */
  draining?: () => boolean;
  /**
   * Sends webhook jobs to the ingest queue in addBulk batches; pass one to flush
   * it on shutdown (main.ts does), else the app makes its own.
   */
  ingestBatcher?: JobBatcher;
}

/** The one form all these records belong to, as a batcher group (records of one form may share a job); none when they mix forms. */
function sameForm(submissions: readonly { sourceId: string; formId: string }[], bytes: number): Combinable | undefined {
  const first = submissions[0];
  if (!first || submissions.some((s) => s.formId !== first.formId || s.sourceId !== first.sourceId)) return undefined;
  return { group: `${first.sourceId}\0${first.formId}`, size: bytes };
}

/** A JSON error a webhook sender (or its operator) can read. */
class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

/**
 * A webhook's 202 as JSON, written directly: res.json would also hash the body
 * for an ETag on every answer, which nothing uses for a POST.
 */
function accepted(res: Response, body: object): void {
  res.statusCode = 202;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.end(JSON.stringify(body));
}

/**
 * The webhook jobs' batcher: the jobs of concurrent requests go to Redis in one
 * addBulk, and the records of concurrent requests for one form share one ingest job
 * (up to 100 requests and 1 MiB of bodies: big bodies go alone).
 */
export function createWebhookBatcher(queue: Queues['ingest']): JobBatcher {
  return new JobBatcher(queue, { combine: { [IngestBatch.name]: combineIngestBatches } });
}

export function createIngressApp(deps: IngressDeps): express.Express {
  const { config, queues, log, metrics } = deps;
  const app = express();
  app.disable('x-powered-by');
  const sources = new Map(config.sources.map((s) => [s.id, s]));
  const draining = deps.draining ?? (() => false);
  const batcher = deps.ingestBatcher ?? createWebhookBatcher(queues.ingest);
  const jobOptions = ingestJobOptions(config.ingest);

  // While shutting down, every answer tells the client to close its connection: it then never sends on a socket we are about to close.
  app.use((_req, res, next) => {
    if (draining()) res.set('connection', 'close');
    next();
  });
  // The webhook route first: the router tries routes in order, and webhooks are nearly all the traffic.
  const rawBody = express.raw({ type: () => true, limit: deps.bodyLimit ?? '1mb' });

  app.post(
    '/webhooks/:sourceId',
    // Cheap refusals first, before the body is read.
    (req: Request, _res: Response, next: NextFunction) => {
      const source = sources.get(String(req.params.sourceId));
      if (!source) return next(new HttpError(404, 'unknown_source', `no source "${req.params.sourceId}" is configured`));
      if (!WEBHOOK_PARSERS[source.kind]) return next(new HttpError(404, 'no_webhooks', `source "${source.id}" (${source.kind}) does not receive webhooks; it is polled`));
      if (!source.webhook) return next(new HttpError(403, 'webhook_disabled', `source "${source.id}" has no webhook secret configured, so its webhook is disabled`));
      if (!checkWebhookAuth(source.webhook, req)) return next(new HttpError(401, 'unauthorized', 'missing or wrong webhook credentials', { 'www-authenticate': 'Basic realm="fieldsync"' }));
      if (!webhookFormat(req.headers['content-type'])) return next(new HttpError(415, 'unsupported_media_type', `Content-Type must be application/json or application/xml, got "${req.headers['content-type'] ?? '(none)'}"`));
      next();
    },
    rawBody,
    async (req: Request, res: Response, next: NextFunction) => {
      try {
        const source = sources.get(String(req.params.sourceId))!;
        const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
        if (!verifySignature(source.webhook!, req, body)) throw new HttpError(401, 'bad_signature', 'webhook signature does not match the body');
        const receivedAt = new Date();
        const text = body.toString('utf8');
        const contentType = req.headers['content-type']!;
        const hints = typeof req.query.formId === 'string' ? { formId: req.query.formId } : {};
        let reading;
        try {
          reading = readWebhookBody(source, { body: text, contentType }, receivedAt, hints);
        } catch (err) {
          if (err instanceof WebhookBodyError) throw new HttpError(err.code === 'unsupported_media_type' ? 415 : 400, err.code, err.message);
          throw err;
        }
        const enqueue = async (name: string, data: unknown, share?: Combinable) => {
          try {
            // Batched with the jobs of concurrent requests; resolves only once this job is in Redis.
            return await batcher.add(name, data, jobOptions, share);
          } catch (err) {
            log.error({ err, sourceId: source.id }, 'could not enqueue webhook');
            throw new HttpError(503, 'queue_unavailable', 'the queue is unavailable; retry later', { 'retry-after': '30' });
          }
        };
        // The body kept whole, for the loader to read (again) or dead-letter.
        const keepWhole = (reason?: string) => enqueue(UnparsedWebhook.name, UnparsedWebhook.payload.parse({
          sourceId: source.id, contentType, body: text, ...(reason !== undefined ? { reason } : {}), receivedAt: receivedAt.toISOString(), hints,
        }));
        if (reading.unparsed !== undefined) {
          // Authenticated and well-formed, but not understood: kept whole (senders like Kobo never retry a 4xx); the loader dead-letters it.
          const job = await keepWhole(reading.unparsed);
          metrics.unparsed.inc({ source: source.id });
          metrics.requests.inc({ source: source.id, status: '202' });
          log.warn({ sourceId: source.id, jobId: job.id, reason: reading.unparsed }, 'webhook body not understood; kept as a dead letter');
          return accepted(res, { accepted: 0, kept: true, jobId: job.id, reason: reading.unparsed });
        }
        const submissions = reading.submissions;
        // XML is read again by the loader, which knows the form's repeats (XML alone cannot tell a one-entry repeat from a group).
        const job = webhookFormat(contentType) === 'xml'
          ? await keepWhole()
          : await enqueue(IngestBatch.name, { submissions }, sameForm(submissions, body.length));
        metrics.enqueued.inc({ source: source.id }, submissions.length);
        metrics.requests.inc({ source: source.id, status: '202' });
        accepted(res, { accepted: submissions.length, jobId: job.id, keys: submissions.map((s) => s.key) });
      } catch (err) {
        next(err);
      }
    },
  );

  app.get('/healthz', (_req, res) => void res.json({ status: 'ok' }));
  app.get('/readyz', async (_req, res) => {
    if (draining()) return void res.status(503).json({ status: 'unavailable', error: 'shutting down' });
    try {
      await deps.redis.ping();
      res.json({ status: 'ready' });
    } catch (err) {
      res.status(503).json({ status: 'unavailable', error: `redis: ${(err as Error).message}` });
    }
  });
  app.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });

  if (deps.admin) {
    const noDb = () => {
      throw new Error('no database configured for the admin routes');
    };
    app.use('/admin', createAdminRouter({
      config, queues, log, db: deps.db ?? noDb, basePath: '/admin',
      accounts: { admin: deps.admin, readonly: deps.adminReadonly },
    }));
  }

  app.use((_req, res) => void res.status(404).json({ error: 'not_found', message: 'no such endpoint' }));

  // Every error leaves as JSON with a status a sender can act on.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    // Router params are gone by now; take the id from the path. Unknown ids share one label (bounded cardinality).
    const id = /^\/webhooks\/([^/]+)/.exec(req.path)?.[1] ?? '';
    const source = sources.has(id) ? id : 'unknown';
    let e: HttpError;
    if (err instanceof HttpError) e = err;
    else if ((err as { type?: string }).type === 'entity.too.large') e = new HttpError(413, 'payload_too_large', `body exceeds the ${deps.bodyLimit ?? '1mb'} limit`);
    else {
      log.error({ err }, 'webhook failed');
      e = new HttpError(500, 'internal', 'internal error');
    }
    if (req.path.startsWith('/webhooks/')) {
      metrics.requests.inc({ source, status: String(e.status) });
      metrics.errors.inc({ source, reason: e.code });
      if (e.status < 500) log.warn({ sourceId: source, status: e.status, code: e.code, msg: e.message }, 'webhook refused');
    }
    res.status(e.status).set(e.headers).json({ error: e.code, message: e.message });
  });
  return app;
}
