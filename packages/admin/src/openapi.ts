/** The OpenAPI 3.1 document of the admin API and the webhook endpoint, generated from the zod schemas. */
import { OpenAPIRegistry, OpenApiGeneratorV31 } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import {
  ApiError, DeadLetterDetail, DeadLettersPage, DeadLettersQuery, JobStatus, ReplayRequest, ReplayResponse, RunsPage, RunsQuery,
  StatusResponse, TriggerRequest, TriggerResponse, WebhookAccepted,
} from './schemas.ts';

const json = (schema: z.ZodType, description: string) => ({ description, content: { 'application/json': { schema } } });
const errors = {
  400: json(ApiError, 'bad request (the message says which parameter)'),
  401: json(ApiError, 'admin credentials required'),
  503: json(ApiError, 'the database (or Redis) is unavailable; retry later'),
};
const postErrors = { ...errors, 403: json(ApiError, 'read-only account, cross-site request, or missing/wrong CSRF token') };
const csrfHeader = z.object({ 'x-csrf-token': z.string().describe('from GET /admin/api/csrf (same cookie jar), or the status page') });

let cached: object | undefined;

export function openApiDocument(): Record<string, unknown> {
  if (cached) return cached as Record<string, unknown>;
  const reg = new OpenAPIRegistry();
  reg.registerComponent('securitySchemes', 'adminBasic', { type: 'http', scheme: 'basic', description: 'ADMIN_USER/ADMIN_PASSWORD, or the read-only account (GET only)' });
  const path = (p: Parameters<OpenAPIRegistry['registerPath']>[0]) => reg.registerPath({ tags: ['admin'], security: [{ adminBasic: [] }], ...p });

  path({ method: 'get', path: '/admin/api/status', summary: 'Sources and forms: last poll/sweep, errors, cursor, rows, dead letters, next runs', responses: { 200: json(StatusResponse, 'status per source and form'), ...errors } });
  path({ method: 'get', path: '/admin/api/runs', summary: 'The import log (SyncRun), newest first', request: { query: RunsQuery }, responses: { 200: json(RunsPage, 'a page of runs'), ...errors } });
  path({ method: 'get', path: '/admin/api/dead-letters', summary: 'Dead letters, newest first (not yet replayed unless replayed=true)', request: { query: DeadLettersQuery }, responses: { 200: json(DeadLettersPage, 'a page of dead letters'), ...errors } });
  path({
    method: 'get', path: '/admin/api/dead-letters/{id}', summary: 'One dead letter with its payload and error',
    request: { params: z.object({ id: z.string() }) },
    responses: { 200: json(DeadLetterDetail, 'the dead letter'), 404: json(ApiError, 'no such dead letter'), ...errors },
  });
  path({
    method: 'post', path: '/admin/api/dead-letters/replay', summary: 'Send dead letters back through ingest',
    request: { headers: csrfHeader, body: { content: { 'application/json': { schema: ReplayRequest } } } },
    responses: { 200: json(ReplayResponse, 'how many records were re-enqueued'), ...postErrors },
  });
  path({
    method: 'post', path: '/admin/api/sources/{sourceId}/forms/{formId}/sync', summary: 'Poll, sweep or backfill one form now',
    request: { params: z.object({ sourceId: z.string(), formId: z.string() }), headers: csrfHeader, body: { content: { 'application/json': { schema: TriggerRequest } } } },
    responses: { 202: json(TriggerResponse, 'queued for the poller'), 404: json(ApiError, 'unknown source or form'), ...postErrors },
  });
  path({
    method: 'get', path: '/admin/api/jobs/{id}', summary: "A job's state: are a webhook's records stored yet?",
    request: { params: z.object({ id: z.string().describe('the jobId a webhook answer carries') }), query: z.object({ queue: z.enum(['ingest', 'poll', 'dead-letter']).optional().describe('default ingest'), key: z.string().optional().describe("one record of the job (a webhook answer's `keys`): concurrent webhooks for one form share a job") }) },
    responses: { 200: json(JobStatus, 'the job'), 404: json(ApiError, 'unknown job, or removed after completion'), ...errors },
  });
  path({ method: 'get', path: '/admin/api/csrf', summary: 'The CSRF token for POSTs (send the session cookie back with it)', responses: { 200: json(z.object({ token: z.string(), role: z.enum(['admin', 'readonly']) }), 'token and role'), ...errors } });
  path({ method: 'get', path: '/admin/api/openapi.json', summary: 'This document', responses: { 200: json(z.record(z.string(), z.unknown()), 'OpenAPI 3.1') } });
  path({ method: 'get', path: '/admin/api/docs', summary: 'This document as a readable page', responses: { 200: { description: 'HTML', content: { 'text/html': { schema: z.string() } } } } });

  reg.registerComponent('securitySchemes', 'webhookSecret', { type: 'apiKey', in: 'header', name: 'Authorization', description: "the source's webhook secret: a token header, Basic credentials or an HMAC signature header, as configured" });
  reg.registerPath({
    method: 'post', path: '/webhooks/{sourceId}', tags: ['webhooks'], security: [{ webhookSecret: [] }],
    summary: 'Receive submissions pushed by a source (Kobo REST Service); never touches the database',
    request: {
      params: z.object({ sourceId: z.string() }),
      query: z.object({ formId: z.string().optional().describe('hint when the body does not name its form') }),
      body: { required: true, content: { 'application/json': { schema: z.unknown() }, 'application/xml': { schema: z.string() } } },
    },
    responses: {
      202: json(WebhookAccepted, 'queued for the loader'),
      400: json(ApiError, 'malformed body'),
      401: json(ApiError, 'missing or wrong webhook credentials / signature'),
      403: json(ApiError, 'webhook disabled for this source'),
      404: json(ApiError, 'unknown source, or a source that is polled'),
      413: json(ApiError, 'body too large'),
      415: json(ApiError, 'unsupported Content-Type'),
      503: json(ApiError, 'queue unavailable; retry later'),
    },
  });

  cached = new OpenApiGeneratorV31(reg.definitions).generateDocument({
    openapi: '3.1.0',
    info: { title: 'fieldsync admin API', version: '1.0.0', description: 'Sync status, import log, dead letters and sync triggers of a fieldsync deployment; and its webhook endpoint.' },
    servers: [{ url: '/' }],
  });
  return cached as Record<string, unknown>;
}
