/**
 * A call-analytics-like REST API for tests and the demo: dictionaries (agents,
 * tags) and data (conversations with nested scores), each served under every
 * paging style the REST connector speaks, behind a switchable auth style —
 * including a login whose tokens expire (short TTL option) mid-run.
 *
 *   /api/{page|offset|cursor|link|next|none}/{agents|tags|conversations}
 *   POST /auth/login {username, password} → {data: {access_token, expires_in}}
 *
 * Filtering: `updated_since=<ISO>` keeps rows with `updated_at >= it`. Rows are
 * served in key order. Paging parameters: page/per_page (first page 1),
 * offset/limit, cursor/limit (`meta.next_cursor`), limit + `Link` rel=next, limit
 * + `next` URL in the body.
 */
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';

export type RestAuthMode = 'none' | 'header' | 'bearer' | 'basic' | 'login';
export type RestResource = 'agents' | 'tags' | 'conversations';
export const REST_PAGING_STYLES = ['page', 'offset', 'cursor', 'link', 'next', 'none'] as const;
export type RestPagingStyle = (typeof REST_PAGING_STYLES)[number];

type Row = Record<string, unknown>;

export interface RestSimulatorOptions {
  port?: number;
  /** Auth checked on `/api/*` (switchable later through `authMode`). Default 'login'. */
  auth?: RestAuthMode;
  /** How long a login token is accepted. Default 1 h. */
  tokenTtlMs?: number;
  /** Whether the login answer says `expires_in` (seconds). Default true; false makes the client learn expiry from a 401. */
  reportExpiresIn?: boolean;
  /** Conversations seeded. Default 30. */
  conversations?: number;
  /** Delay before each `/api` answer (stretches a run past a short token TTL). */
  delayMs?: number;
}

export interface RestRequestLogEntry {
  method: string;
  path: string;
  query: Record<string, string>;
  status: number;
}

const keyOf = (resource: RestResource, r: Row): string => (resource === 'tags' ? `${String(r.group)}/${String(r.code)}` : String(r.id));

export class RestSimulator {
  url = '';
  authMode: RestAuthMode;
  readonly username = 'analyst';
  readonly password = 'pa55-word';
  readonly apiKey = 'key-' + randomBytes(6).toString('hex');
  readonly staticToken = 'tok-' + randomBytes(6).toString('hex');
  tokenTtlMs: number;
  reportExpiresIn: boolean;
  delayMs: number;
  /** Every request, in order. */
  readonly requests: RestRequestLogEntry[] = [];
  logins = 0;
  /** 401s sent for an expired login token. */
  expiredRefusals = 0;
  private readonly tokens = new Map<string, number>();
  private readonly rows: Record<RestResource, Map<string, Row>> = { agents: new Map(), tags: new Map(), conversations: new Map() };
  private server?: Server;
  private clock = Date.parse('2026-11-01T08:00:00.000Z');

  private constructor(opts: RestSimulatorOptions) {
    this.authMode = opts.auth ?? 'login';
    this.tokenTtlMs = opts.tokenTtlMs ?? 3_600_000;
    this.reportExpiresIn = opts.reportExpiresIn ?? true;
    this.delayMs = opts.delayMs ?? 0;
    for (let i = 1; i <= 6; i++) this.add('agents', { id: i, name: `Agent ${i}`, email: `agent${i}@example.org`, active: i !== 6 });
    for (const [group, codes] of [['topic', ['billing', 'outage', 'upgrade']], ['mood', ['calm', 'angry']]] as const) {
      for (const code of codes) this.add('tags', { group, code, label: code[0]!.toUpperCase() + code.slice(1) });
    }
    for (let i = 1; i <= (opts.conversations ?? 30); i++) {
      this.add('conversations', {
        id: 1000 + i,
        agent_id: (i % 6) + 1,
        started_at: new Date(this.clock - (100 - i) * 60_000).toISOString(),
        duration_s: 60 + ((i * 37) % 900),
        resolved: i % 3 !== 0,
        scores: { quality: (i * 7) % 10, sentiment: (i % 5) - 2 },
        tags: i % 2 ? ['topic/billing'] : ['topic/outage', 'mood/angry'],
      });
    }
  }

  static async start(opts: RestSimulatorOptions = {}): Promise<RestSimulator> {
    const sim = new RestSimulator(opts);
    const server = sim.app().listen(opts.port ?? 0, '127.0.0.1');
    await new Promise<void>((resolve, reject) => server.once('listening', resolve).once('error', reject));
    const addr = server.address();
    if (!addr || typeof addr === 'string') throw new Error('no address');
    sim.url = `http://127.0.0.1:${addr.port}`;
    sim.server = server;
    return sim;
  }

  /** A strictly later time for each change, so `updated_since` sees edits. */
  private tick(): string {
    this.clock += 1000;
    return new Date(this.clock).toISOString();
  }

  /** Adds (or replaces) a row; stamps `updated_at`. */
  add(resource: RestResource, row: Row): Row {
    const r = { ...row, updated_at: this.tick() };
    this.rows[resource].set(keyOf(resource, r), r);
    return r;
  }

  /** Changes a row's fields; stamps `updated_at`. */
  edit(resource: RestResource, key: string | number, patch: Row): Row {
    const r = this.rows[resource].get(String(key));
    if (!r) throw new Error(`no ${resource} row ${key}`);
    Object.assign(r, patch, { updated_at: this.tick() });
    return r;
  }

  /** Deletes a row outright (APIs like this one keep no tombstones). */
  remove(resource: RestResource, key: string | number): void {
    if (!this.rows[resource].delete(String(key))) throw new Error(`no ${resource} row ${key}`);
  }

  list(resource: RestResource): Row[] {
    return [...this.rows[resource].values()];
  }

  /** Makes every login token issued so far invalid now (a revocation, or a server restart). */
  expireTokens(): void {
    this.tokens.clear();
  }

  close(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private authorized(req: Request): boolean {
    const h = req.headers.authorization ?? '';
    switch (this.authMode) {
      case 'none':
        return true;
      case 'header':
        return req.headers['x-api-key'] === this.apiKey;
      case 'bearer':
        return h === `Bearer ${this.staticToken}`;
      case 'basic':
        return h === `Basic ${Buffer.from(`${this.username}:${this.password}`).toString('base64')}`;
      case 'login': {
        const exp = this.tokens.get(h.replace(/^Bearer /, ''));
        if (exp === undefined) return false;
        if (Date.now() >= exp) {
          this.expiredRefusals++;
          return false;
        }
        return true;
      }
    }
  }

  private app() {
    const app = express();
    app.use((req: Request, res: Response, next: NextFunction) => {
      res.on('finish', () => this.requests.push({ method: req.method, path: req.path, query: { ...(req.query as Record<string, string>) }, status: res.statusCode }));
      next();
    });
    app.post('/auth/login', express.json(), (req, res) => {
      const b = (req.body ?? {}) as Record<string, unknown>;
      if (b.username !== this.username || b.password !== this.password) return void res.status(401).json({ error: 'invalid credentials' });
      const token = randomBytes(12).toString('hex');
      this.tokens.set(token, Date.now() + this.tokenTtlMs);
      this.logins++;
      res.json({ data: { access_token: token, ...(this.reportExpiresIn ? { expires_in: this.tokenTtlMs / 1000 } : {}) } });
    });
    app.get('/api/:style/:resource', async (req, res) => {
      if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
      if (!this.authorized(req)) return void res.status(401).json({ error: 'unauthorized' });
      const style = req.params.style as RestPagingStyle;
      const resource = req.params.resource as RestResource;
      if (!REST_PAGING_STYLES.includes(style) || !(resource in this.rows)) return void res.status(404).json({ error: 'not found' });
      const q = req.query as Record<string, string | undefined>;
      let rows = [...this.rows[resource].entries()].sort(([a], [b]) => (a.length - b.length || (a < b ? -1 : a > b ? 1 : 0))).map(([, r]) => r);
      if (q.updated_since) {
        const since = Date.parse(q.updated_since);
        if (Number.isNaN(since)) return void res.status(400).json({ error: 'updated_since: not a time' });
        rows = rows.filter((r) => Date.parse(String(r.updated_at)) >= since);
      }
      const limit = Math.max(1, Math.min(Number(q.limit ?? q.per_page ?? 20) || 20, 500));
      const self = new URL(req.originalUrl, this.url);
      switch (style) {
        case 'none':
          return void res.json({ data: { items: rows } });
        case 'page': {
          const page = Math.max(1, Number(q.page ?? 1) || 1);
          return void res.json({ data: { items: rows.slice((page - 1) * limit, page * limit) }, meta: { page, per_page: limit, total: rows.length } });
        }
        case 'offset': {
          const offset = Math.max(0, Number(q.offset ?? 0) || 0);
          return void res.json({ data: { items: rows.slice(offset, offset + limit) }, meta: { total: rows.length } });
        }
        case 'cursor': {
          // Opaque token: the key after which the next page starts (keyset, stable under inserts).
          const after = q.cursor ? Buffer.from(q.cursor, 'base64url').toString() : undefined;
          const start = after === undefined ? 0 : rows.findIndex((r) => keyOf(resource, r) === after) + 1;
          const items = rows.slice(start, start + limit);
          const more = start + limit < rows.length;
          return void res.json({ data: { items }, meta: { next_cursor: more ? Buffer.from(keyOf(resource, items[items.length - 1]!)).toString('base64url') : null } });
        }
        case 'link': {
          const offset = Math.max(0, Number(q.offset ?? 0) || 0);
          if (offset + limit < rows.length) {
            const next = new URL(self);
            next.searchParams.set('offset', String(offset + limit));
            res.setHeader('link', `<${next.pathname}${next.search}>; rel="next", <${self.pathname}>; rel="first"`);
          }
          return void res.json(rows.slice(offset, offset + limit));
        }
        case 'next': {
          const offset = Math.max(0, Number(q.offset ?? 0) || 0);
          const next = new URL(self);
          next.searchParams.set('offset', String(offset + limit));
          return void res.json({ results: rows.slice(offset, offset + limit), next: offset + limit < rows.length ? next.href : null });
        }
      }
    });
    return app;
  }
}

export const startRestSimulator = (opts?: RestSimulatorOptions): Promise<RestSimulator> => RestSimulator.start(opts);
