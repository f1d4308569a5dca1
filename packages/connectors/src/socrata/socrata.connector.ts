import { setTimeout as sleep } from 'node:timers/promises';
import type { Got, Response } from 'got';
import { HTTPError } from 'got';
import type { SocrataSourceConfig } from '@fieldsync/config';
import type { Logger } from '@fieldsync/logger';
import type { CanonicalSubmission, FormDefinition } from '@fieldsync/model';
import { AuthError, tombstonePages, type Cursor, type PullOptions, type PullPage, type SourceConnector, type StoredIndex, type SweepPage } from '../connector.ts';
import { backoffDelay, baseUrl, createHttpClient, jsonBody } from '../http.ts';
import { keyField, SocrataView, socrataDefinition } from './socrata.schema.ts';

/**
 * The Socrata cursor. `since` is the high-water mark of the updated column over
 * complete walks; `walk` is present only mid-walk (the keyset position and the
 * highest value read so far), so a crash resumes the same walk instead of
 * skipping rows it had not reached. `etag`/`lastModified` are those of the
 * probe query after the last complete walk.
 */
export interface SocrataCursor extends Cursor {
  column: string;
  since?: string;
  walk?: { afterId: string; high?: string; cap?: string };
  etag?: string;
  lastModified?: string;
}

type Row = Record<string, unknown>;

/** How long a dataset's metadata (key column) is reused between pulls. */
const VIEW_TTL_MS = 60_000;

/** A SoQL string literal: single quotes, a quote inside doubled. */
export const soqlLiteral = (s: string) => `'${s.replace(/'/g, "''")}'`;

/** Socrata's fixed timestamps end in Z; SoQL literals are written without it (sources.md). */
const literalOf = (column: string, v: string) => soqlLiteral(column.startsWith(':') ? v.replace(/Z$/, '') : v);

const iso = (v: unknown): string | undefined => {
  if (typeof v !== 'string' || Number.isNaN(Date.parse(v))) return undefined;
  const t = /(?:Z|[+-]\d\d:?\d\d)$/.test(v) ? v : `${v}Z`;
  return new Date(t).toISOString();
};

function cursorOf(c: Cursor | null, column: string): SocrataCursor | null {
  if (c === null) return null;
  // A cursor of another column (the config changed) means nothing for this one: start over.
  if (c.column !== column) return null;
  if (c.since !== undefined && typeof c.since !== 'string') throw new Error(`invalid Socrata cursor ${JSON.stringify(c)}: since must be a string`);
  const w = c.walk as SocrataCursor['walk'] | undefined;
  if (w !== undefined && (typeof w !== 'object' || w === null || typeof w.afterId !== 'string')) throw new Error(`invalid Socrata cursor ${JSON.stringify(c)}: walk.afterId must be a string`);
  return c as SocrataCursor;
}

/**
 * Socrata (SODA 2.1; 2.0 tolerated). Every walk is keyset on `:id` —
 * `$where=:id > '…'` with `$order=:id` — which stays stable while rows change
 * (an `$offset` walk skips a row when one before it is deleted). Incremental
 * pulls AND the keyset with `<updatedColumn> > '<since>'`. Before any paging
 * a probe query carries the stored ETag (and Last-Modified): a 304 ends the
 * pull, so an unchanged dataset costs one request.
 */
export class SocrataConnector implements SourceConnector {
  readonly kind = 'socrata';
  readonly sourceId: string;
  /** A backfill (`sync --initialize`) is a full reload: rows it did not return are gone at the source. */
  readonly reconcileOnBackfill = true;
  private readonly http: Got;
  private readonly logger?: Logger;
  private readonly base: URL;
  private readonly views = new Map<string, { view: SocrataView; at: number }>();

  constructor(
    private readonly source: SocrataSourceConfig,
    deps: { logger?: Logger; onResponse?: (status: string) => void } = {},
  ) {
    this.sourceId = source.id;
    this.logger = deps.logger;
    this.base = baseUrl(source.baseUrl);
    this.http = createHttpClient({
      policy: source.http,
      logger: deps.logger,
      sourceId: source.id,
      onResponse: deps.onResponse,
      headers: { accept: 'application/json', ...(source.appToken ? { 'x-app-token': source.appToken } : {}) },
    });
  }

  async listForms(): Promise<string[]> {
    return [...this.source.datasets];
  }

  /** One definition per column layout (its version is a hash of the columns). */
  async formDefinitions(formId: string, opts: { known?: ReadonlySet<string>; signal?: AbortSignal } = {}): Promise<FormDefinition[]> {
    const view = await this.view(formId, 0, opts.signal);
    const def = socrataDefinition(this.sourceId, view);
    return opts.known?.has(def.version) ? [] : [def];
  }

  async *pull(formId: string, raw: Cursor | null, opts: PullOptions): AsyncIterable<PullPage> {
    const column = this.source.updatedColumn;
    const cursor = opts.via === 'backfill' ? null : cursorOf(raw, column);
    const probe = await this.probe(formId, cursor, opts.signal);
    if (probe.unchanged) {
      this.logger?.debug({ sourceId: this.sourceId, formId }, 'socrata dataset unchanged (304)');
      return;
    }
    const key = keyField(await this.view(formId, VIEW_TTL_MS, opts.signal));
    const since = cursor?.since;
    let high = cursor?.walk?.high ?? since;
    // A row edited during the walk, behind the keyset, is re-read next time only if the
    // cursor stays at or below its new time: `:updated_at` is capped at the newest value
    // the dataset had when the walk began (re-reading what came after is harmless).
    const cap = column === ':updated_at' ? (cursor?.walk?.cap ?? probe.newest) : undefined;
    const where = since !== undefined ? `${column} > ${literalOf(column, since)}` : undefined;
    for await (const page of this.walk(formId, { select: ':*,*', where, afterId: cursor?.walk?.afterId, signal: opts.signal })) {
      for (const r of page.rows) {
        const v = r[column];
        if (typeof v === 'string' && (high === undefined || v > high)) high = v;
      }
      const submissions = page.rows.map((r) => this.canonical(formId, key, r, page.observedAt, opts.via));
      const done = high !== undefined && cap !== undefined && high > cap ? cap : high;
      const next: SocrataCursor = page.done
        ? { column, ...(done !== undefined ? { since: done } : {}), ...(probe.etag ? { etag: probe.etag } : {}), ...(probe.lastModified ? { lastModified: probe.lastModified } : {}) }
        : { column, ...(since !== undefined ? { since } : {}), walk: { afterId: page.lastId!, ...(high !== undefined ? { high } : {}), ...(cap !== undefined ? { cap } : {}) } };
      yield { submissions, cursor: next };
    }
  }

  /**
   * Deletions, which SODA never reports: walks every key (`$select=:id`, plus
   * the row identifier column) and, after a complete walk, emits tombstones for
   * stored keys the dataset no longer has. A walk that fails part-way throws
   * before any tombstone. Edits need no sweep: they bump `:updated_at`.
   */
  async *sweep(formId: string, stored: StoredIndex, opts: { signal?: AbortSignal } = {}): AsyncIterable<SweepPage> {
    const key = keyField(await this.view(formId, 0, opts.signal));
    const seen = new Set<string>();
    let checked = 0;
    for await (const page of this.walk(formId, { select: key === ':id' ? ':id' : `:id,${key}`, signal: opts.signal })) {
      for (const r of page.rows) seen.add(this.keyOf(formId, key, r));
      checked += page.rows.length;
      yield { submissions: [], checked };
    }
    let deleted = 0;
    for await (const tombstones of tombstonePages(this.sourceId, formId, stored, (k) => seen.has(k))) {
      deleted += tombstones.length;
      for (let i = 0; i < tombstones.length; i += 1000) yield { submissions: tombstones.slice(i, i + 1000), checked, total: checked };
    }
    this.logger?.info({ sourceId: this.sourceId, formId, checked, deleted }, 'socrata sweep done');
  }

  private keyOf(formId: string, key: string, r: Row): string {
    const v = r[key];
    if (typeof v === 'string' && v !== '') return v;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    throw new Error(`socrata ${this.sourceId}/${formId}: a row without its key ${key}: ${JSON.stringify(r).slice(0, 200)}`);
  }

  private canonical(formId: string, key: string, r: Row, observedAt: Date, via: CanonicalSubmission['via']): CanonicalSubmission {
    const updatedAt = iso(r[':updated_at']);
    if (!updatedAt) throw new Error(`socrata ${this.sourceId}/${formId}: row ${String(r[':id'])} has no :updated_at (was $select=:*,* dropped?)`);
    const version = typeof r[':version'] === 'string' && r[':version'] ? r[':version'] : updatedAt;
    return {
      sourceId: this.sourceId,
      formId,
      key: this.keyOf(formId, key, r),
      version,
      updatedAt,
      submittedAt: iso(r[':created_at']) ?? updatedAt,
      deleted: false,
      observedAt: observedAt.toISOString(),
      data: r,
      via,
    };
  }

  /** The metadata, reused for `ttlMs`. */
  private async view(formId: string, ttlMs: number, signal?: AbortSignal): Promise<SocrataView> {
    const hit = this.views.get(formId);
    if (hit && Date.now() - hit.at < ttlMs) return hit.view;
    const res = await this.get(new URL(`api/views/${encodeURIComponent(formId)}.json`, this.base), {}, {}, signal);
    const parsed = SocrataView.safeParse(jsonBody(res));
    if (!parsed.success) throw new Error(`socrata ${this.sourceId}: unexpected metadata for ${formId}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    this.views.set(formId, { view: parsed.data, at: Date.now() });
    return parsed.data;
  }

  /**
   * One small query with the stored validators: 304 = nothing changed since the last
   * complete walk; otherwise it also tells the newest `:updated_at` right now.
   */
  private async probe(formId: string, cursor: SocrataCursor | null, signal?: AbortSignal): Promise<{ unchanged: boolean; etag?: string; lastModified?: string; newest?: string }> {
    const headers: Record<string, string> = {};
    // Only a cursor of a complete walk carries validators: a walk cut short must go on.
    if (cursor?.etag && !cursor.walk) headers['if-none-match'] = cursor.etag;
    if (cursor?.lastModified && !cursor.walk) headers['if-modified-since'] = cursor.lastModified;
    const res = await this.get(this.resource(formId), { $select: ':updated_at', $order: ':updated_at DESC', $limit: '1' }, headers, signal);
    if (res.statusCode === 304) return { unchanged: true };
    const body: unknown = jsonBody(res);
    const newest = Array.isArray(body) && typeof (body[0] as Row | undefined)?.[':updated_at'] === 'string' ? ((body[0] as Row)[':updated_at'] as string) : undefined;
    return { unchanged: false, etag: res.headers.etag, lastModified: res.headers['last-modified'], newest };
  }

  private resource(formId: string): URL {
    return new URL(`resource/${encodeURIComponent(formId)}.json`, this.base);
  }

  /** Keyset walk on `:id`; `done` on the page that ends it (a short page). */
  private async *walk(formId: string, o: { select: string; where?: string; afterId?: string; signal?: AbortSignal }): AsyncGenerator<{ rows: Row[]; observedAt: Date; lastId?: string; done: boolean }> {
    const limit = this.source.pageSize;
    let after = o.afterId;
    for (;;) {
      const where = [o.where, after !== undefined ? `:id > ${soqlLiteral(after)}` : undefined].filter(Boolean).join(' AND ');
      const params: Record<string, string> = { $select: o.select, $order: ':id', $limit: String(limit), ...(where ? { $where: where } : {}) };
      const res = await this.get(this.resource(formId), params, {}, o.signal);
      const observedAt = new Date();
      // A lagging replica answered: the rows are still right, just not the newest; the next poll catches up.
      if (res.headers['x-soda2-data-out-of-date'] === 'true') this.logger?.warn({ sourceId: this.sourceId, formId }, 'socrata answered from a replica that is behind (X-SODA2-Data-Out-Of-Date)');
      const body: unknown = jsonBody(res);
      if (!Array.isArray(body)) throw new Error(`socrata ${this.sourceId}/${formId}: expected an array of rows, got ${res.body.slice(0, 200)}`);
      const rows = body as Row[];
      const last = rows.at(-1)?.[':id'];
      if (rows.length > 0 && typeof last !== 'string') throw new Error(`socrata ${this.sourceId}/${formId}: rows without :id`);
      // Guards against a server that ignores the keyset: it must move forward.
      if (after !== undefined && typeof last === 'string' && last <= after) throw new Error(`socrata ${this.sourceId}/${formId}: page did not advance past :id ${after}`);
      const done = rows.length < limit;
      this.logger?.debug({ sourceId: this.sourceId, formId, after, received: rows.length }, 'socrata page');
      yield { rows, observedAt, lastId: last as string | undefined, done };
      if (done) return;
      after = last as string;
    }
  }

  /**
   * GET with the shared policy (timeouts; 429 without Retry-After and 5xx backed off
   * by got), plus SODA's 202 "still computing": waited out with the same backoff.
   */
  private async get(url: URL, searchParams: Record<string, string>, headers: Record<string, string>, signal?: AbortSignal): Promise<Response<string>> {
    const policy = this.source.http;
    for (let attempt = 1; ; attempt++) {
      let res: Response<string>;
      try {
        res = await this.http.get(url, { searchParams, headers, signal });
      } catch (e) {
        if (e instanceof HTTPError) {
          const status = e.response.statusCode;
          const detail = String(e.response.body ?? '').slice(0, 300);
          if (status === 401 || status === 403) throw new AuthError(`Socrata refused the request to ${url.pathname}`, 'appToken (and the environment variable it is read from)', `${status}: ${detail}`, status);
          throw new Error(`socrata ${this.sourceId}: HTTP ${status} from ${url.pathname}: ${detail}`, { cause: e });
        }
        throw e;
      }
      if (res.statusCode !== 202) return res;
      if (attempt > policy.retries) throw new Error(`socrata ${this.sourceId}: ${url.pathname} still computing (202) after ${attempt} tries`);
      const delay = backoffDelay(policy, attempt);
      this.logger?.warn({ sourceId: this.sourceId, attempt, delayMs: delay, url: url.pathname }, 'socrata still computing (202); retrying');
      await sleep(delay, undefined, { signal });
    }
  }
}
