/**
 * The admin JSON API (mounted at /admin/api, behind adminAuth). Every path
 * here is in the OpenAPI document (openapi.ts); a test walks this router to
 * keep the two in step.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import { z } from 'zod';
import type { FieldsyncConfig } from '@fieldsync/config';
import type { Database } from '@fieldsync/db';
import type { Queues } from '@fieldsync/queues';
import type { Logger } from '@fieldsync/logger';
import { isUnavailable } from '@fieldsync/sync';
import { DeadLettersQuery, ReplayRequest, RunsQuery, TriggerRequest } from './schemas.ts';
import { AdminError, getDeadLetter, jobStatus, listDeadLetters, listRuns, replay, triggerSync } from './service.ts';
import { statusResponse } from './status.ts';
import { openApiDocument } from './openapi.ts';
import { referencePage } from './reference.ts';
import type { AdminLocals } from './auth.ts';

export interface ApiDeps {
  config: FieldsyncConfig;
  queues: Queues;
  log: Logger;
  /** The database, opened on first use: throws when none can be had. */
  db: () => Database;
}

type Handler = (req: Request, res: Response) => Promise<unknown>;

/** What a thrown error answers: ours keep their status; a database that is away is a 503; anything else a 500. */
export function classifyError(err: unknown): { status: number; code: string; message: string } {
  if (err instanceof AdminError) return { status: err.status, code: err.code, message: err.message };
  if (err instanceof z.ZodError) return { status: 400, code: 'bad_request', message: err.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ') };
  if (err instanceof DatabaseUnavailable || isUnavailable(err)) return { status: 503, code: 'database_unavailable', message: `the database is unavailable: ${(err as Error).message}` };
  return { status: 500, code: 'internal', message: (err as Error).message };
}

export function answerError(err: unknown, res: Response, log: Logger): void {
  const e = classifyError(err);
  if (e.status === 500) log.error({ err }, 'admin request failed');
  if (e.status === 503) res.set('retry-after', '30');
  res.status(e.status).json({ error: e.code, message: e.message });
}

export class DatabaseUnavailable extends Error {}

export function createApiRouter(deps: ApiDeps): express.Router {
  const r = express.Router();
  const db = () => {
    try {
      return deps.db();
    } catch (err) {
      throw new DatabaseUnavailable((err as Error).message);
    }
  };
  const h = (fn: Handler) => async (req: Request, res: Response, _next: NextFunction) => {
    try {
      const out = await fn(req, res);
      if (out !== undefined && !res.headersSent) res.json(out);
    } catch (err) {
      answerError(err, res, deps.log);
    }
  };
  const param = (req: Request, name: string) => String(req.params[name]);

  r.get('/status', h(() => statusResponse({ db: db(), queues: deps.queues, config: deps.config })));
  r.get('/runs', h((req) => listRuns(db(), RunsQuery.parse(req.query))));
  r.get('/dead-letters', h((req) => listDeadLetters(db(), DeadLettersQuery.parse(req.query))));
  r.get('/dead-letters/:id', h((req) => getDeadLetter(db(), param(req, 'id'))));
  r.post('/dead-letters/replay', h(async (req) => replay(db(), deps.queues, deps.config, ReplayRequest.parse(req.body ?? {}).ids)));
  r.post(
    '/sources/:sourceId/forms/:formId/sync',
    h(async (req, res) => {
      const out = await triggerSync(deps.queues, deps.config, param(req, 'sourceId'), param(req, 'formId'), TriggerRequest.parse(req.body ?? {}).mode);
      res.status(202);
      return out;
    }),
  );
  r.get('/jobs/:id', h((req) => jobStatus(deps.queues, param(req, 'id'), typeof req.query.queue === 'string' ? req.query.queue : undefined, typeof req.query.key === 'string' ? req.query.key : undefined)));
  r.get('/csrf', h(async (_req, res) => ({ token: (res.locals.admin as AdminLocals).csrf, role: (res.locals.admin as AdminLocals).role })));
  r.get('/openapi.json', h(async () => openApiDocument()));
  r.get('/docs', h(async (_req, res) => void res.type('html').send(referencePage(openApiDocument()))));
  return r;
}
