import { createHash } from 'node:crypto';
import type { Got } from 'got';
import { HTTPError } from 'got';
import jsonata from 'jsonata';
import type { RestEndpoint, RestSourceConfig } from '@fieldsync/config';
import type { Logger } from '@fieldsync/logger';
import type { CanonicalSubmission, FormDefinition } from '@fieldsync/model';
import { AuthError, tombstonePages, type Cursor, type PullOptions, type PullPage, type SourceConnector, type StoredIndex, type SweepPage } from '../connector.ts';
import { baseUrl, createHttpClient } from '../http.ts';
import { RestAuthenticator, credentialKey } from './rest.auth.ts';
import { TypeInference } from './rest.infer.ts';
import { getPath, nextLink } from './rest.paths.ts';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The REST cursor: the highest `updatedField` value read by a complete walk. */
export interface RestCursor extends Cursor {
  high: string;
}

/** JSON with keys sorted, so the same record always hashes alike whatever order the API sends keys in. */
function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (isObj(v)) return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${stableJson(v[k])}`).join(',')}}`;
  return JSON.stringify(v) ?? 'null';
}

/** The record's version: a hash of its content, so a re-delivery is a no-op and any change is a new version. */
export const restVersion = (r: Obj): string => createHash('sha256').update(stableJson(r)).digest('hex').slice(0, 32);

/** Orders high-water marks: as instants when both are times, else as strings. */
function later(a: string, b: string): boolean {
  const ta = Date.parse(a);
  const tb = Date.parse(b);
  return Number.isNaN(ta) || Number.isNaN(tb) ? a > b : ta > tb;
}

export interface RestConnectorDeps {
  logger?: Logger;
  onResponse?: (status: string) => void;
  /** Caps every endpoint's page size (test mode fetches only a few records). */
  maxPageSize?: number;
}

interface WalkPage {
  records: Obj[];
  observedAt: Date;
}

/**
 * Any paginated JSON API, declared in config: one endpoint = one "form".
 * `data` endpoints are read incrementally (`updatedParam` = the stored
 * high-water mark of `updatedField`), `dictionary` endpoints whole each time;
 * the sweep walks an endpoint whole and turns keys that vanished into
 * tombstones. Field types are inferred from the records (rest.infer.ts).
 */
export class RestConnector implements SourceConnector {
  readonly kind = 'rest';
  readonly sourceId: string;
  private readonly http: Got;
  private readonly base: URL;
  private readonly auth: RestAuthenticator;
  private readonly endpoints: Map<string, RestEndpoint>;
  private readonly transforms = new Map<string, ReturnType<typeof jsonata>>();
  /** Per endpoint: the types seen so far (seeded from the stored definition when the runner offers it). */
  private readonly inference = new Map<string, { inf: TypeInference; seeded: boolean }>();
  private readonly logger?: Logger;

  constructor(
    private readonly source: RestSourceConfig,
    private readonly deps: RestConnectorDeps = {},
  ) {
    this.sourceId = source.id;
    this.logger = deps.logger;
    this.base = baseUrl(source.baseUrl);
    this.http = createHttpClient({ policy: source.http, logger: deps.logger, sourceId: source.id, onResponse: deps.onResponse, headers: { accept: 'application/json' } });
    this.auth = new RestAuthenticator(source.auth, this.http, this.base);
    this.endpoints = new Map(source.endpoints.map((e) => [e.name, e]));
    for (const e of source.endpoints) {
      if (!e.transform) continue;
      try {
        this.transforms.set(e.name, jsonata(e.transform));
      } catch (err) {
        throw new Error(`source ${source.id}: endpoints.${e.name}.transform is not valid JSONata: ${(err as Error).message}`, { cause: err });
      }
    }
  }

  /** Logins done so far (login auth). */
  get logins(): number {
    return this.auth.logins;
  }

  async listForms(): Promise<string[]> {
    return this.source.endpoints.map((e) => e.name);
  }

  endpoint(formId: string): RestEndpoint {
    const e = this.endpoints.get(formId);
    if (!e) throw new Error(`source ${this.sourceId} has no endpoint "${formId}" (have: ${[...this.endpoints.keys()].join(', ')})`);
    return e;
  }

  /** The record's key: the key field, or the composite key's fields joined by `/`. */
  keyOf(e: RestEndpoint, r: Obj): string {
    const fields = Array.isArray(e.key) ? e.key : [e.key];
    const parts = fields.map((f) => {
      const v = getPath(r, f);
      if (v === undefined || v === null || v === '' || typeof v === 'object') {
        throw new Error(`endpoint ${e.name}: a record has no usable key field "${f}" (check endpoints.${e.name}.key): ${JSON.stringify(r).slice(0, 200)}`);
      }
      return String(v);
    });
    return parts.join('/');
  }

  canonical(e: RestEndpoint, r: Obj, observedAt: Date, via: CanonicalSubmission['via']): CanonicalSubmission {
    const observed = observedAt.toISOString();
    const u = e.updatedField ? getPath(r, e.updatedField) : undefined;
    const t = typeof u === 'string' || typeof u === 'number' ? new Date(u) : undefined;
    const updatedAt = t && !Number.isNaN(t.getTime()) ? t.toISOString() : observed;
    return { sourceId: this.sourceId, formId: e.name, key: this.keyOf(e, r), version: restVersion(r), updatedAt, submittedAt: updatedAt, deleted: false, observedAt: observed, data: r, via };
  }

  private state(formId: string) {
    let s = this.inference.get(formId);
    if (!s) this.inference.set(formId, (s = { inf: new TypeInference(), seeded: false }));
    return s;
  }

  /**
   * The inferred definition when it is not stored yet. `stored` (the runner's
   * stored definitions, oldest first) seeds the inference once, so a new process
   * starts from the widest types already in the tables, never narrower.
   */
  async formDefinitions(formId: string, opts: { known?: ReadonlySet<string>; stored?: () => Promise<FormDefinition[]> } = {}): Promise<FormDefinition[]> {
    const e = this.endpoint(formId);
    const s = this.state(formId);
    if (!s.seeded && opts.stored) {
      const stored = await opts.stored();
      const seed = TypeInference.from(stored[stored.length - 1]);
      // What this process inferred before seeding widens the stored types.
      seed.mergeFrom(s.inf);
      s.inf = seed;
      s.seeded = true;
    }
    if (s.inf.fields.size === 0) return [];
    const def = s.inf.definition(this.sourceId, formId, e.name);
    return opts.known?.has(def.version) ? [] : [def];
  }

  /** The layout a pulled record was typed with: the endpoint's current inferred version (changes when a type widens). */
  formVersionOf(sub: CanonicalSubmission): string | undefined {
    const s = this.inference.get(sub.formId);
    return s && s.inf.fields.size ? s.inf.version() : undefined;
  }

  /** Inference over what a page brought, before the runner asks for the definition. */
  private observe(formId: string, records: Obj[]): void {
    this.state(formId).inf.add(records);
  }

  async *pull(formId: string, cursor: Cursor | null, opts: PullOptions): AsyncIterable<PullPage> {
    const e = this.endpoint(formId);
    const incremental = e.kind === 'data' && e.updatedField !== undefined;
    const since = incremental && cursor && typeof cursor.high === 'string' ? cursor.high : undefined;
    let high = since;
    for await (const page of this.walk(e, { since, signal: opts.signal })) {
      this.observe(formId, page.records);
      const submissions = page.records.map((r) => this.canonical(e, r, page.observedAt, opts.via));
      if (incremental) {
        for (const r of page.records) {
          const v = getPath(r, e.updatedField!);
          const s = typeof v === 'string' ? v : typeof v === 'number' ? String(v) : undefined;
          if (s !== undefined && (high === undefined || later(s, high))) high = s;
        }
      }
      // No cursor mid-walk: an API need not page in updatedField order, so only a complete walk may move it.
      yield { submissions };
    }
    yield { submissions: [], cursor: high !== undefined ? ({ high } satisfies RestCursor) : { complete: new Date().toISOString() } };
  }

  /**
   * Walks the endpoint whole (no updated filter): records whose content we do not
   * hold come back, and after a complete walk stored keys the API no longer lists
   * become tombstones. A walk that fails part-way throws before any tombstone.
   */
  async *sweep(formId: string, stored: StoredIndex, opts: { signal?: AbortSignal } = {}): AsyncIterable<SweepPage> {
    const e = this.endpoint(formId);
    const seen = new Set<string>();
    let checked = 0;
    for await (const page of this.walk(e, { signal: opts.signal })) {
      this.observe(formId, page.records);
      const subs = page.records.map((r) => this.canonical(e, r, page.observedAt, 'sweep'));
      // What we hold, for this page's keys only.
      const held = await stored.lookup(subs.map((s) => s.key));
      const changed: CanonicalSubmission[] = [];
      for (const sub of subs) {
        seen.add(sub.key);
        const s = held.get(sub.key);
        if (!s || s.deleted || s.version !== sub.version) changed.push(sub);
      }
      checked += page.records.length;
      yield { submissions: changed, checked };
    }
    let deleted = 0;
    for await (const tombstones of tombstonePages(this.sourceId, formId, stored, (k) => seen.has(k))) {
      deleted += tombstones.length;
      yield { submissions: tombstones, checked };
    }
    if (deleted) this.logger?.info({ sourceId: this.sourceId, formId, deleted }, 'records gone from the API marked deleted');
  }

  /** One GET with auth; a 401 with login auth logs in again and retries once. */
  private async get(url: URL, signal?: AbortSignal) {
    for (let attempt = 0; ; attempt++) {
      const headers = await this.auth.headers(signal);
      try {
        return await this.http.get(url, { headers, signal, responseType: 'text' });
      } catch (err) {
        if (!(err instanceof HTTPError) || ![401, 403].includes(err.response.statusCode)) throw err;
        const status = err.response.statusCode;
        if (status === 401 && this.auth.canRefresh && attempt === 0) {
          this.logger?.info({ sourceId: this.sourceId }, 'REST token refused; logging in again');
          this.auth.invalidate();
          continue;
        }
        const body = typeof err.response.body === 'string' ? err.response.body.slice(0, 200) : '';
        throw new AuthError('REST request refused', credentialKey(this.source.auth), `HTTP ${status} at ${url.pathname}${body ? `: ${body}` : ''}`, status);
      }
    }
  }

  private pageSize(size: number): number {
    return this.deps.maxPageSize ? Math.min(size, this.deps.maxPageSize) : size;
  }

  /** Every page of an endpoint in its paging style, records transformed. */
  async *walk(e: RestEndpoint, opts: { since?: string; signal?: AbortSignal }): AsyncIterable<WalkPage> {
    const p = e.paging;
    const first = new URL(e.path.replace(/^\//, ''), this.base);
    for (const [k, v] of Object.entries(e.query)) first.searchParams.set(k, String(v));
    if (opts.since !== undefined && e.updatedParam) first.searchParams.set(e.updatedParam, opts.since);
    const size = p.style === 'none' ? 0 : this.pageSize(p.size);
    const setSize = (u: URL) => {
      const param = p.style === 'page' ? p.sizeParam : p.style === 'offset' ? p.limitParam : p.style === 'none' ? undefined : p.sizeParam;
      if (param) u.searchParams.set(param, String(size));
    };
    setSize(first);
    let pageNo = p.style === 'page' ? p.first : 0;
    let offset = 0;
    let url: URL | undefined = first;
    const visited = new Set<string>();
    while (url) {
      if (p.style === 'page') url.searchParams.set(p.param, String(pageNo));
      if (p.style === 'offset') url.searchParams.set(p.offsetParam, String(offset));
      if (visited.has(url.href)) throw new Error(`endpoint ${e.name}: the API sent the same next page twice (${url.pathname}${url.search}); stopping instead of looping`);
      visited.add(url.href);
      const res = await this.get(url, opts.signal);
      const observedAt = new Date();
      let body: unknown;
      try {
        body = JSON.parse(res.body);
      } catch {
        throw new Error(`endpoint ${e.name}: the answer is not JSON (${res.body.slice(0, 100)})`);
      }
      const raw = getPath(body, e.recordsPath);
      if (!Array.isArray(raw)) throw new Error(`endpoint ${e.name}: no array at recordsPath "${e.recordsPath}" in the answer (check endpoints.${e.name}.recordsPath)`);
      const records = await this.transform(e, raw);
      yield { records, observedAt };
      const current: URL = url;
      url = undefined;
      if (raw.length === 0) break;
      switch (p.style) {
        case 'none':
          break;
        case 'page':
          if (raw.length >= size) {
            pageNo++;
            url = current;
          }
          break;
        case 'offset':
          if (raw.length >= size) {
            offset += raw.length;
            url = current;
          }
          break;
        case 'cursor': {
          const token = getPath(body, p.nextPath);
          if (typeof token === 'string' ? token !== '' : typeof token === 'number') {
            url = new URL(current);
            url.searchParams.set(p.param, String(token));
          }
          break;
        }
        case 'link':
          url = this.sameOrigin(e, nextLink(res.headers.link, current));
          break;
        case 'next': {
          const next = getPath(body, p.nextPath);
          if (typeof next === 'string' && next !== '') url = this.sameOrigin(e, new URL(next, current));
          break;
        }
      }
    }
  }

  /** Credentials go with every request: a next page on another host is refused, not followed. */
  private sameOrigin(e: RestEndpoint, u: URL | undefined): URL | undefined {
    if (u && u.origin !== this.base.origin) throw new Error(`endpoint ${e.name}: the next page is on another host (${u.origin}); not sending credentials there`);
    return u;
  }

  private async transform(e: RestEndpoint, raw: unknown[]): Promise<Obj[]> {
    const t = this.transforms.get(e.name);
    let out: unknown = raw;
    if (t) {
      try {
        out = await t.evaluate(raw);
      } catch (err) {
        throw new Error(`endpoint ${e.name}: the transform failed: ${(err as Error).message}`, { cause: err });
      }
      if (out === undefined) out = [];
      if (isObj(out)) out = [out]; // JSONata yields a lone object for a one-element sequence
    }
    if (!Array.isArray(out) || !out.every(isObj)) throw new Error(`endpoint ${e.name}: ${t ? 'the transform must yield' : 'recordsPath must hold'} an array of objects`);
    return out as Obj[];
  }
}

