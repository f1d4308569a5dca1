import express, { type Request, type Response, type NextFunction } from 'express';
import { parseFields, parseQuery, parseSort, project, QueryError, selectDocs } from './kobo.query.ts';
import { createHash } from 'node:crypto';
import type { KoboAsset, KoboStore, KoboVersion } from './kobo.records.ts';
import { attachmentBytes, type FileFaults } from '../attachments.ts';

/** A canned answer for the next request (rate limit, outage, slowness). */
export interface KoboFault {
  /** Status to answer with; omit to answer normally after `delayMs`. */
  status?: number;
  /** Sets `Retry-After` (seconds). */
  retryAfterS?: number;
  /** JSON body; default `{"detail": …}`. */
  body?: unknown;
  /** Wait this long before answering (e.g. to trip a client timeout). */
  delayMs?: number;
}

export interface KoboRequestLog {
  method: string;
  /** Path without the query string. */
  path: string;
  query: Record<string, string>;
  status: number;
  /** True when an injected fault answered. */
  faulted: boolean;
  at: Date;
}

export interface KoboServerState {
  store: KoboStore;
  token: string;
  faults: KoboFault[];
  log: KoboRequestLog[];
  /** Base of absolute URLs (`next`, `previous`, `url`); default: the Host the client called. */
  publicUrl?: string;
  /** Deployed versions embedded in the asset detail (default 100, like kpi's DEFAULT_API_PAGE_SIZE). */
  embeddedVersions?: number;
  /** Failures served for attachment downloads, by file name. */
  fileFaults?: FileFaults;
}

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 1000;
/** Requests kept in the log (oldest dropped first). */
const LOG_LIMIT = 10_000;

function firstString(v: unknown): string | undefined {
  if (Array.isArray(v)) return firstString(v[0]);
  return typeof v === 'string' ? v : undefined;
}

function queryOf(req: Request): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.query)) {
    const s = firstString(v);
    if (s !== undefined) out[k] = s;
  }
  return out;
}

const contentHash = (v: KoboVersion) => createHash('sha1').update(JSON.stringify(v.content)).digest('hex');

const detail = (res: Response, status: number, text: string) => res.status(status).json({ detail: text });

/** Express app answering like kpi's v2 API. */
export function createKoboApp(state: KoboServerState): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const base = (req: Request) => (state.publicUrl ?? `${req.protocol}://${req.get('host')}`).replace(/\/$/, '');

  // Request log first, so faults and 401s are counted too.
  app.use((req, res, next) => {
    const entry: KoboRequestLog = { method: req.method, path: req.path, query: queryOf(req), status: 0, faulted: false, at: new Date() };
    state.log.push(entry);
    if (state.log.length > LOG_LIMIT) state.log.splice(0, state.log.length - LOG_LIMIT); // long demo runs
    res.locals.log = entry;
    res.on('finish', () => (entry.status = res.statusCode));
    next();
  });

  app.use(async (_req, res, next) => {
    const fault = state.faults.shift();
    if (!fault) return next();
    if (fault.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
    if (fault.status === undefined) return next();
    (res.locals.log as KoboRequestLog).faulted = true;
    if (fault.retryAfterS !== undefined) res.set('Retry-After', String(fault.retryAfterS));
    res.status(fault.status).json(fault.body ?? { detail: fault.status === 429 ? `Request was throttled. Expected available in ${fault.retryAfterS ?? 1} seconds.` : 'Simulated fault.' });
  });

  // KoboCAT's v1 API is gone since 2026.
  app.use('/api/v1', (_req, res) => detail(res, 410, 'The v1 API has been removed. Use /api/v2/.'));

  // DRF TokenAuthentication.
  app.use('/api/v2', (req, res, next: NextFunction) => {
    const h = req.get('authorization');
    if (!h) return res.status(401).set('WWW-Authenticate', 'Token').json({ detail: 'Authentication credentials were not provided.' });
    const m = /^Token\s+(\S+)$/.exec(h);
    if (!m || m[1] !== state.token) return res.status(401).set('WWW-Authenticate', 'Token').json({ detail: 'Invalid token.' });
    next();
  });

  const surveyOr404 = (req: Request, res: Response): KoboAsset | undefined => {
    const a = state.store.assets.get(String(req.params.uid));
    if (!a || a.assetType !== 'survey') {
      detail(res, 404, 'Not found.');
      return undefined;
    }
    return a;
  };

  const assetSummary = (req: Request, a: KoboAsset) => ({
    url: `${base(req)}/api/v2/assets/${a.uid}/`,
    uid: a.uid,
    name: a.name,
    asset_type: a.assetType,
    owner__username: a.owner,
    date_created: a.dateCreated.toISOString(),
    date_modified: a.dateModified.toISOString(),
    has_deployment: a.versions.length > 0,
    deployment__active: a.versions.length > 0,
    deployment__submission_count: a.records.size,
    deployed_version_id: a.versions.at(-1)?.uid ?? null,
    data: `${base(req)}/api/v2/assets/${a.uid}/data/`,
  });

  // Listing: only `q=asset_type:<type>` filters (the often-cited `?asset_type=` is ignored, as on the real server).
  app.get('/api/v2/assets/', (req, res) => {
    const q = queryOf(req).q;
    const type = q && /^asset_type:(\w+)$/.exec(q.trim())?.[1];
    const assets = [...state.store.assets.values()].filter((a) => !type || a.assetType === type);
    res.json({ count: assets.length, next: null, previous: null, results: assets.map((a) => assetSummary(req, a)) });
  });

  // kpi's AssetVersionListSerializer; `date_deployed` is `false` for a version never deployed.
  const versionLabels = (a: KoboAsset) => {
    const labels = new Map<string, string>();
    let major = 0;
    let minor = 0;
    for (const v of a.history) {
      if (v.deployedAt) {
        major += 1;
        minor = 0;
        labels.set(v.uid, String(major));
      } else labels.set(v.uid, `${major}.${++minor}`);
    }
    return labels;
  };
  const versionSummary = (req: Request, a: KoboAsset, v: KoboVersion, labels = versionLabels(a)) => ({
    uid: v.uid,
    url: `${base(req)}/api/v2/assets/${a.uid}/versions/${v.uid}/`,
    content_hash: contentHash(v),
    date_deployed: v.deployedAt ? v.deployedAt.toISOString() : false,
    date_modified: v.dateModified.toISOString(),
    version_number: labels.get(v.uid) ?? '0',
  });
  /** DRF LimitOffsetPagination over a list, with absolute links. */
  const paginate = <T>(req: Request, items: T[]) => {
    const q = queryOf(req);
    const limit = Math.min(/^\d+$/.test(q.limit ?? '') && Number(q.limit) > 0 ? Number(q.limit) : DEFAULT_LIMIT, MAX_LIMIT);
    const offset = /^\d+$/.test(q.offset ?? '') ? Number(q.offset) : 0;
    const link = (o: number) => {
      const u = new URL(`${base(req)}${req.baseUrl}${req.path}`);
      for (const [k, v] of Object.entries(q)) u.searchParams.set(k, v);
      u.searchParams.set('limit', String(limit));
      if (o > 0) u.searchParams.set('offset', String(o));
      else u.searchParams.delete('offset');
      return u.toString();
    };
    return {
      count: items.length,
      next: offset + limit < items.length ? link(offset + limit) : null,
      previous: offset > 0 ? link(Math.max(offset - limit, 0)) : null,
      results: items.slice(offset, offset + limit),
    };
  };

  app.get('/api/v2/assets/:uid/', (req, res) => {
    const a = state.store.assets.get(req.params.uid);
    if (!a) return detail(res, 404, 'Not found.');
    const labels = versionLabels(a);
    // `deployed_versions` newest first (AssetVersion orders by -date_modified); `content` is the draft.
    const deployed = [...a.versions].reverse().map((v) => versionSummary(req, a, v, labels));
    const embedded = state.embeddedVersions ?? DEFAULT_LIMIT;
    const more = deployed.length > embedded ? `${base(req)}/api/v2/assets/${a.uid}/versions/?deployed=true&limit=${embedded}&offset=${embedded}` : null;
    res.json({
      ...assetSummary(req, a),
      version_id: a.history.at(-1)?.uid ?? null,
      version__content_hash: a.history.at(-1) ? contentHash(a.history.at(-1)!) : null,
      deployed_versions: { count: deployed.length, next: more, previous: null, results: deployed.slice(0, embedded) },
      summary: { languages: a.content.translations, row_count: a.content.survey.length },
      content: a.content,
    });
  });

  // Every saved version, newest first; `?deployed=true|false` filters (Django reads the boolean from the string).
  app.get('/api/v2/assets/:uid/versions/', (req, res) => {
    const a = surveyOr404(req, res);
    if (!a) return;
    const flag = queryOf(req).deployed?.toLowerCase();
    const want = flag === undefined ? undefined : ['true', '1', 't'].includes(flag) ? true : ['false', '0', 'f'].includes(flag) ? false : null;
    if (want === null) return detail(res, 400, `“${flag}” value must be either True or False.`);
    const labels = versionLabels(a);
    const list = [...a.history].reverse().filter((v) => want === undefined || Boolean(v.deployedAt) === want);
    res.json(paginate(req, list.map((v) => versionSummary(req, a, v, labels))));
  });

  // The raw content a version was saved (and maybe deployed) with.
  app.get('/api/v2/assets/:uid/versions/:vid/', (req, res) => {
    const a = surveyOr404(req, res);
    if (!a) return;
    const v = a.history.find((x) => x.uid === req.params.vid);
    if (!v) return detail(res, 404, 'Not found.');
    res.json({ ...versionSummary(req, a, v), content: v.content });
  });

  app.get('/api/v2/assets/:uid/data/', (req, res) => {
    const a = surveyOr404(req, res);
    if (!a) return;
    const q = queryOf(req);
    if (q.format !== undefined && q.format !== 'json') return detail(res, 404, 'Not found.');

    let limit = DEFAULT_LIMIT;
    if (q.limit !== undefined) {
      if (!/^\d+$/.test(q.limit) || Number(q.limit) === 0) return detail(res, 400, '`limit` must be a positive integer.');
      limit = Math.min(Number(q.limit), MAX_LIMIT); // cut silently, as kpi does since March 2026
    }
    if (q.start !== undefined && !/^\d+$/.test(q.start)) return detail(res, 400, '`start` must be a non-negative integer.');
    const start = Number(q.start ?? 0);

    let rows;
    let fields;
    try {
      const filter = parseQuery(q.query);
      const sort = parseSort(q.sort);
      fields = parseFields(q.fields);
      rows = selectDocs(state.store.visible(a.uid), filter, sort);
    } catch (e) {
      if (e instanceof QueryError) return detail(res, 400, e.message);
      throw e;
    }

    // Absolute links on the caller's query, like DRF's LimitOffsetPagination (with kpi's `start`).
    const link = (offset: number | null) => {
      const u = new URL(`${base(req)}${req.baseUrl}${req.path}`);
      for (const [k, v] of Object.entries(q)) u.searchParams.set(k, v);
      u.searchParams.set('limit', String(limit));
      if (offset) u.searchParams.set('start', String(offset));
      else u.searchParams.delete('start');
      return u.toString();
    };
    const page = rows.slice(start, start + limit);
    // The same body res.json would write; whole records come from their cached JSON.
    const results = fields ? JSON.stringify(page.map((r) => project(r, fields))) : `[${page.map((r) => state.store.json(r)).join(',')}]`;
    const next = start + limit < rows.length ? link(start + limit) : null;
    const previous = start > 0 ? link(Math.max(start - limit, 0)) : null;
    res.type('application/json').send(`{"count":${rows.length},"next":${JSON.stringify(next)},"previous":${JSON.stringify(previous)},"results":${results}}`);
  });

  // An attachment's download_url: kpi streams the file itself (no redirect); bytes are deterministic per file name.
  app.get('/api/v2/assets/:uid/data/:id/attachments/:attUid/', (req, res) => {
    const a = surveyOr404(req, res);
    if (!a) return;
    const rec = a.records.get(Number(req.params.id));
    const att = (rec?._attachments as { uid: string; is_deleted: boolean; mimetype: string; media_file_basename: string }[] | undefined)?.find((x) => x.uid === req.params.attUid);
    if (!att || att.is_deleted) return detail(res, 404, 'Not found.');
    const fault = state.fileFaults?.take(att.media_file_basename);
    if (fault !== undefined) return detail(res, fault, 'Simulated fault.');
    const bytes = attachmentBytes(att.media_file_basename);
    res.status(200).set({ 'content-type': att.mimetype, 'content-length': String(bytes.length), 'content-disposition': `attachment; filename=${att.media_file_basename}` }).end(bytes);
  });

  app.get('/api/v2/assets/:uid/data/:id/', (req, res) => {
    const a = surveyOr404(req, res);
    if (!a) return;
    const rec = a.records.get(Number(req.params.id));
    if (!rec) return detail(res, 404, 'Not found.');
    res.json(rec);
  });

  app.use((_req, res) => detail(res, 404, 'Not found.'));
  app.use((err: Error, _req: Request, res: Response, _next: NextFunction) => detail(res, 500, `Simulator error: ${err.message}`));
  return app;
}
