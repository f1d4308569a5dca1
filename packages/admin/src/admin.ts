/**
 * Everything under /admin: Basic auth (admin and optional read-only account),
 * CSRF protection on every POST, the status page, the JSON API at /api and
 * Bull Board at /queues (read-only for the read-only account).
 */
import express, { type Request, type Response } from 'express';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { z } from 'zod';
import { adminAuth, type AdminLocals, type Credentials } from './auth.ts';
import { answerError, classifyError, createApiRouter, DatabaseUnavailable, type ApiDeps } from './api.ts';
import { statusResponse } from './status.ts';
import { getDeadLetter, listDeadLetters, listRuns, replay, triggerSync } from './service.ts';
import { deadLetterPage, errorPage, statusPage } from './page.ts';
import { esc, layout } from './html.ts';

export interface AdminDeps extends ApiDeps {
  accounts: { admin: Credentials; readonly?: Credentials };
  /** Where the router is mounted (links, cookie path, Bull Board's base path). Default /admin. */
  basePath?: string;
}

const SyncForm = z.object({ sourceId: z.string(), formId: z.string(), mode: z.enum(['poll', 'sweep', 'backfill']) });

export function createAdminRouter(deps: AdminDeps): express.Router {
  const base = deps.basePath ?? '/admin';
  const r = express.Router();
  const boards = (['admin', 'readonly'] as const).map((role) => {
    const board = new ExpressAdapter();
    board.setBasePath(`${base}/queues`);
    createBullBoard({
      queues: [deps.queues.ingest, deps.queues.poll, deps.queues.deadLetter].map((q) => new BullMQAdapter(q, { readOnlyMode: role === 'readonly' })),
      serverAdapter: board,
      options: { uiConfig: { boardTitle: role === 'readonly' ? 'fieldsync (read-only)' : 'fieldsync', miscLinks: [{ text: 'Status page', url: `${base}/status` }] } },
    });
    return board.getRouter() as express.Router;
  });

  // Bodies first: the CSRF check reads the form's `_csrf`.
  r.use(express.json({ limit: '100kb' }), express.urlencoded({ extended: false, limit: '100kb' }));
  r.use(adminAuth(deps.accounts, base));
  const who = (res: Response) => res.locals.admin as AdminLocals;
  const db = () => {
    try {
      return deps.db();
    } catch (err) {
      throw new DatabaseUnavailable((err as Error).message);
    }
  };
  const page = (fn: (req: Request, res: Response) => Promise<string>) => async (req: Request, res: Response) => {
    try {
      res.type('html').send(await fn(req, res));
    } catch (err) {
      const e = classifyError(err);
      if (e.status === 500) deps.log.error({ err }, 'admin page failed');
      res.status(e.status).type('html').send(errorPage(e.status, e.message));
    }
  };
  const back = (res: Response, msg: string) => res.redirect(303, `${base}/status?msg=${encodeURIComponent(msg)}`);

  // A landing page rather than a redirect: it answers without the database, and a browser moves on to the status page at once.
  r.get('/', (_req, res) =>
    res.type('html').send(layout('fieldsync admin', `<meta http-equiv="refresh" content="0; url=${esc(base)}/status"><h1>fieldsync admin</h1><ul><li><a href="${esc(base)}/status">Status</a></li><li><a href="${esc(base)}/queues">Queues (Bull Board)</a></li><li><a href="${esc(base)}/api/docs">API reference</a></li></ul>`)),
  );
  r.get(
    '/status',
    page(async (req, res) => {
      const d = db();
      const [s, runs, dead] = await Promise.all([
        statusResponse({ db: d, queues: deps.queues, config: deps.config }),
        listRuns(d, { limit: 15, offset: 0 }),
        listDeadLetters(d, { limit: 50, offset: 0, replayed: 'false' }),
      ]);
      return statusPage(base, s, runs.items, dead, who(res), typeof req.query.msg === 'string' ? req.query.msg.slice(0, 300) : undefined);
    }),
  );
  r.get('/status/dead-letters/:id', page(async (req, res) => deadLetterPage(base, await getDeadLetter(db(), String(req.params.id)), who(res))));
  r.post('/status/sync', async (req, res) => {
    try {
      const f = SyncForm.parse(req.body);
      const out = await triggerSync(deps.queues, deps.config, f.sourceId, f.formId, f.mode);
      back(res, `${f.mode} of ${f.sourceId}/${f.formId} queued (job ${out.jobId})`);
    } catch (err) {
      answerError(err, res, deps.log);
    }
  });
  r.post('/status/replay', async (req, res) => {
    try {
      const id = typeof req.body?.id === 'string' && req.body.id ? [req.body.id as string] : undefined;
      const out = await replay(db(), deps.queues, deps.config, id);
      back(res, `${out.replayed} record(s) sent back to the loader`);
    } catch (err) {
      answerError(err, res, deps.log);
    }
  });
  r.use('/api', createApiRouter(deps));
  r.use('/queues', (req, res, next) => boards[who(res).role === 'admin' ? 0 : 1]!(req, res, next));
  return r;
}
