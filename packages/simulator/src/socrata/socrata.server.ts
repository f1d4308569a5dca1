import express, { type Request, type Response } from 'express';
import { createHash } from 'node:crypto';
import { SYSTEM_FIELDS, type SocrataDataset } from './socrata.data.ts';
import { matches, parseOrder, parseWhere, projector, SoqlError, sortRows } from './socrata.soql.ts';

export interface SocrataRequestLog {
  path: string;
  query: Record<string, string>;
  status: number;
  at: Date;
}

export interface SocrataServerState {
  datasets: Map<string, SocrataDataset>;
  /** When set, a request with another `X-App-Token` is refused (403), as SODA refuses an invalid token. */
  appToken?: string;
  /** Every Nth request to `/resource/` answers 429 without `Retry-After` (0 = never). */
  throttleEvery: number;
  /** The next this-many `/resource/` requests answer 202 "still computing". */
  computing: number;
  /** SODA 2.0: `X-SODA2-Legacy-Types: true` and `$limit` at most 50,000. */
  legacy: boolean;
  log: SocrataRequestLog[];
}

const LOG_LIMIT = 10_000;
export const SODA_DEFAULT_LIMIT = 1000;
export const SODA2_MAX_LIMIT = 50_000;

const first = (v: unknown): string | undefined => (Array.isArray(v) ? first(v[0]) : typeof v === 'string' ? v : undefined);

const error = (res: Response, status: number, code: string, message: string) => res.status(status).json({ code, error: true, message });

/** Express app answering like SODA 2.1 (`/resource/{4x4}.json`, `/api/views/{4x4}.json`). */
export function createSocrataApp(state: SocrataServerState): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  let resourceRequests = 0;

  app.use((req, res, next) => {
    const query: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.query)) {
      const s = first(v);
      if (s !== undefined) query[k] = s;
    }
    const entry: SocrataRequestLog = { path: req.path, query, status: 0, at: new Date() };
    state.log.push(entry);
    if (state.log.length > LOG_LIMIT) state.log.splice(0, state.log.length - LOG_LIMIT);
    res.on('finish', () => (entry.status = res.statusCode));
    const token = req.get('x-app-token');
    if (state.appToken !== undefined && token !== undefined && token !== state.appToken) return error(res, 403, 'invalid_app_token', 'Invalid app_token specified');
    next();
  });

  app.get('/api/views/:id.json', (req: Request<{ id: string }>, res) => {
    const ds = state.datasets.get(req.params.id);
    if (!ds) return error(res, 404, 'not_found', `Cannot find view with id ${req.params.id}`);
    res.json(ds.metadata());
  });

  app.get('/resource/:id.json', (req: Request<{ id: string }>, res) => {
    resourceRequests++;
    // Throttled: SODA answers 429 with no Retry-After; clients back off on their own.
    if (state.throttleEvery > 0 && resourceRequests % state.throttleEvery === 0) return error(res, 429, 'too_many_requests', 'Too many requests');
    if (state.computing > 0) {
      state.computing--;
      return res.status(202).json({ code: 'in_progress', message: 'still computing; retry later' });
    }
    const ds = state.datasets.get(req.params.id);
    if (!ds) return error(res, 404, 'not_found', `Cannot find dataset ${req.params.id}`);
    const q = (k: string) => first(req.query[k]);
    const userFields = ds.columns.map((c) => c.fieldName);
    const known = new Set<string>([...SYSTEM_FIELDS, ...userFields]);

    // The ETag names the data version and the query; Last-Modified the data's last change.
    const etag = `"${createHash('sha1').update(`${ds.id}|${ds.dataVersion}|${req.url.replace(/^[^?]*/, '')}`).digest('base64url').slice(0, 20)}"`;
    const lastModified = new Date(Math.floor(ds.lastModified.getTime() / 1000) * 1000);
    res.set('ETag', etag);
    res.set('Last-Modified', lastModified.toUTCString());
    res.set('X-SODA2-Truth-Last-Modified', lastModified.toUTCString());
    if (state.legacy) res.set('X-SODA2-Legacy-Types', 'true');
    // RFC 9110: If-None-Match decides when present; If-Modified-Since only without it.
    const inm = req.get('if-none-match');
    const ims = req.get('if-modified-since');
    if (inm !== undefined ? inm.split(',').some((t) => t.trim().replace(/^W\//, '') === etag) : ims !== undefined && Date.parse(ims) >= lastModified.getTime()) {
      return res.status(304).end();
    }

    let where, order, project;
    try {
      where = parseWhere(q('$where'));
      order = parseOrder(q('$order'));
      project = projector(q('$select'), userFields);
      for (const f of [...where.map((w) => w.field), ...order.map((o) => o.field)]) {
        if (!known.has(f)) throw new SoqlError(`No such column: ${f}`);
      }
    } catch (e) {
      if (e instanceof SoqlError) return error(res, 400, 'query.compiler.malformed', e.message);
      throw e;
    }
    const limit = q('$limit') === undefined ? SODA_DEFAULT_LIMIT : Number(q('$limit'));
    const offset = q('$offset') === undefined ? 0 : Number(q('$offset'));
    if (!Number.isInteger(limit) || limit < 0 || !Number.isInteger(offset) || offset < 0) return error(res, 400, 'query.compiler.malformed', '$limit and $offset must be non-negative integers');
    if (state.legacy && limit > SODA2_MAX_LIMIT) return error(res, 400, 'query.execution.limitTooHigh', `$limit must be at most ${SODA2_MAX_LIMIT} on SODA 2.0`);

    // Without $order rows come in no particular order (here: insertion order, not :id).
    let rows = order.length === 1 && order[0]!.field === ':id' && !order[0]!.desc ? ds.byId() : [...ds.rows.values()];
    if (where.length) rows = rows.filter((r) => matches(r, where));
    if (order.length && !(order.length === 1 && order[0]!.field === ':id' && !order[0]!.desc)) rows = sortRows(rows, order);
    res.json(rows.slice(offset, offset + limit).map(project));
  });

  app.use((_req, res) => error(res, 404, 'not_found', 'not found'));
  return app;
}
