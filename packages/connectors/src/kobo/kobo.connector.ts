import type { Got } from 'got';
import { HTTPError } from 'got';
import { z } from 'zod';
import type { KoboSourceConfig } from '@fieldsync/config';
import type { Logger } from '@fieldsync/logger';
import type { CanonicalSubmission, FormDefinition } from '@fieldsync/model';
import { AuthError, tombstonePages, type Cursor, type PullOptions, type PullPage, type SourceConnector, type StoredIndex, type SweepPage } from '../connector.ts';
import { baseUrl, createHttpClient, jsonBody } from '../http.ts';
import { koboVersion, toCanonical, type KoboRecord } from './kobo.canonical.ts';
import { KoboSchemaReader, koboFormVersion } from './kobo.schema.ts';

/** kpi cuts any larger `limit` to this, silently. */
export const KOBO_MAX_PAGE = 1000;
/**
 * Ids per `$in` re-fetch. The list travels in the URL (≈12 bytes per id once
 * encoded): 200 keeps it near 2.5 kB, well under proxies' 8 kB line limits.
 */
export const KOBO_REFETCH_CHUNK = 200;

/**
 * A cursor written before the late-record window was a time carried no
 * `lastTime`: its first poll re-reads this many ids below it, as it did then.
 */
export const KOBO_LEGACY_ID_OVERLAP = 100;

/** The Kobo cursor: the highest `_id` read, and the newest `_submission_time` read. */
export interface KoboCursor extends Cursor {
  lastId: number;
  /** As Kobo writes it ("2026-11-16T09:12:44", UTC without a zone); absent in cursors from older versions. */
  lastTime?: string;
}

/** Kobo's `_submission_time` shape: compared as a string, so only this exact shape is used in queries. */
const KOBO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/;

const Envelope = z.object({
  count: z.number().int().nonnegative(),
  next: z.string().nullable(),
  // Not z.record: it rebuilds each record and drops an own `__proto__` key; records are kept as the API sent them.
  results: z.array(z.custom<Record<string, unknown>>((v) => typeof v === 'object' && v !== null && !Array.isArray(v), { message: 'expected a record object' })),
});

interface WalkPage {
  records: (KoboRecord & { _id: number })[];
  /** Records matching the walk's query, from its first page. */
  count: number;
  observedAt: Date;
}

function lastIdOf(cursor: Cursor | null): number | null {
  if (cursor === null || cursor.lastId === undefined || cursor.lastId === null) return null;
  const n = typeof cursor.lastId === 'string' ? Number(cursor.lastId) : cursor.lastId;
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new Error(`invalid Kobo cursor ${JSON.stringify(cursor)}: lastId must be a non-negative integer`);
  return n;
}

function lastTimeOf(cursor: Cursor | null): string | undefined {
  const t = cursor?.lastTime;
  if (t === undefined || t === null) return undefined;
  if (typeof t !== 'string' || !KOBO_TIME.test(t) || Number.isNaN(Date.parse(`${t}Z`))) throw new Error(`invalid Kobo cursor ${JSON.stringify(cursor)}: lastTime must look like "2026-11-16T09:12:44"`);
  return t;
}

/** `t` (Kobo's format) minus `ms`, in Kobo's format, rounded down to the second. */
function kobotimeMinus(t: string, ms: number): string {
  return new Date(Math.floor((Date.parse(`${t}Z`) - ms) / 1000) * 1000).toISOString().slice(0, 19);
}

/**
 * A set of `_id`s in one growing typed array, sorted on first lookup: 8 bytes an id,
 * where a Set of numbers costs several times that and a Set of strings far more.
 */
export class IdSet {
  private ids = new Float64Array(1024);
  private size = 0;
  private sorted = true;

  add(id: number): void {
    if (this.size === this.ids.length) {
      const grown = new Float64Array(this.size * 2);
      grown.set(this.ids);
      this.ids = grown;
    }
    // A walk sorted by `_id` adds in order, so the sort below rarely has work to do.
    if (this.size > 0 && id < this.ids[this.size - 1]!) this.sorted = false;
    this.ids[this.size++] = id;
  }

  has(id: number): boolean {
    if (!this.sorted) {
      this.ids.subarray(0, this.size).sort();
      this.sorted = true;
    }
    let lo = 0;
    let hi = this.size - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const v = this.ids[mid]!;
      if (v === id) return true;
      if (v < id) lo = mid + 1;
      else hi = mid - 1;
    }
    return false;
  }
}

/** The validation status a record carries (`{}` when none), as the stored probe reads it. */
function validationUid(r: KoboRecord): string | null {
  const v = r._validation_status;
  return v && typeof v === 'object' && typeof (v as { uid?: unknown }).uid === 'string' ? (v as { uid: string }).uid : null;
}

/**
 * KoboToolbox (kpi v2 data API). Every walk is keyset on `_id` — `_id > N`
 * sorted by `_id` — and never follows `next` or offsets: offset paging skips
 * records deleted mid-walk, and `next` carries whatever host the server
 * thinks it has. `next` is read only as "there is more".
 */
export class KoboConnector implements SourceConnector {
  readonly kind = 'kobo';
  readonly sourceId: string;
  /** A reviewer's validation status changes no version: the sweep compares it too. */
  readonly sweepProbe = ['_validation_status', 'uid'];
  private readonly http: Got;
  private readonly logger?: Logger;
  private readonly limit: number;
  private readonly base: URL;

  constructor(
    private readonly source: KoboSourceConfig,
    deps: { logger?: Logger; onResponse?: (status: string) => void } = {},
  ) {
    this.sourceId = source.id;
    this.logger = deps.logger;
    this.limit = Math.min(source.pageSize, KOBO_MAX_PAGE);
    this.base = baseUrl(source.baseUrl);
    this.http = createHttpClient({
      policy: source.http,
      logger: deps.logger,
      sourceId: source.id,
      onResponse: deps.onResponse,
      headers: { authorization: `Token ${source.token}`, accept: 'application/json' },
    });
  }

  async listForms(): Promise<string[]> {
    return [...this.source.forms];
  }

  /** Deployed versions' definitions not in `known` (see kobo.schema.ts). */
  async formDefinitions(formId: string, opts: { known?: ReadonlySet<string>; signal?: AbortSignal } = {}): Promise<FormDefinition[]> {
    return new KoboSchemaReader(this.http, this.base, this.sourceId).definitions(formId, opts);
  }

  formVersionOf(s: CanonicalSubmission): string | undefined {
    return koboFormVersion(s.data);
  }

  /**
   * Records with `_id` above the stored cursor, plus every record received within
   * `overlap` (a time) before the newest one read: a smaller `_id` can become
   * visible long after a larger one (the id is taken before slow attachment saves),
   * and `_id` is one counter for the whole server, so a window in ids is seconds on
   * a busy server. Re-reading is harmless: upserts are idempotent. The walk stays
   * keyset on `_id`; the window is an `$or` on `_submission_time`, which Kobo
   * compares as a string. The cursor never moves backwards.
   */
  async *pull(formId: string, cursor: Cursor | null, opts: PullOptions): AsyncIterable<PullPage> {
    const from = lastIdOf(cursor);
    const fromTime = lastTimeOf(cursor);
    let high = from ?? 0;
    let highTime = fromTime;
    let total: number | undefined;
    let after = 0;
    let or: Record<string, unknown>[] | undefined;
    if (from !== null && fromTime === undefined) after = Math.max(from - KOBO_LEGACY_ID_OVERLAP, 0);
    else if (from !== null && this.source.overlap === 0) after = from;
    else if (from !== null) or = [{ _id: { $gt: from } }, { _submission_time: { $gte: kobotimeMinus(fromTime!, this.source.overlap) } }];
    for await (const page of this.walk(formId, { after, or, signal: opts.signal })) {
      total ??= page.count;
      const submissions = page.records.map((r) => this.canonical(formId, r, page.observedAt, opts.via));
      for (const r of page.records) {
        high = Math.max(high, r._id);
        const t = r._submission_time;
        if (typeof t === 'string' && KOBO_TIME.test(t) && (highTime === undefined || t > highTime)) highTime = t;
      }
      const next: KoboCursor = highTime === undefined ? { lastId: high } : { lastId: high, lastTime: highTime };
      yield { submissions, cursor: next, total };
    }
  }

  /**
   * Edits and deletions, which no Kobo field reveals: walks every `_id` with its
   * instanceID and validation status, re-fetches the records whose version or
   * validation status we do not hold (edited, reviewed, stored as deleted, or never stored — a missed webhook below the cursor), and
   * after a complete walk emits tombstones for stored keys the source no longer
   * has (Kobo deletes are hard). A walk that fails part-way throws before any
   * tombstone, so a partial listing never deletes anything.
   * What we hold is looked up page by page; what the walk saw is kept as `_id`s
   * (8 bytes each), so memory stays flat in the size of the form.
   */
  async *sweep(formId: string, stored: StoredIndex, opts: { signal?: AbortSignal } = {}): AsyncIterable<SweepPage> {
    // Rows keyed by rootUuid/instanceID (webhook subsets without `_id`) are rare: their keys are
    // read first, so a record's alternate keys are remembered only when one of them is stored.
    const uuidKeyed = new Set<string>();
    for await (const rows of stored.live({ keys: 'non-numeric' })) for (const s of rows) uuidKeyed.add(s.key);
    const ids = new IdSet();
    const alternates = new Set<string>();
    let checked = 0;
    let total: number | undefined;
    let refetched = 0;
    const stale: number[] = [];
    for await (const page of this.walk(formId, { after: 0, fields: ['_id', 'meta/instanceID', '_validation_status'], signal: opts.signal })) {
      total ??= page.count;
      const held = await stored.lookup(page.records.map((r) => String(r._id)));
      for (const r of page.records) {
        ids.add(r._id);
        // Such a row still exists when its record does: never tombstone it.
        for (const alt of [r['meta/rootUuid'], r['meta/instanceID']]) if (typeof alt === 'string' && uuidKeyed.has(alt)) alternates.add(alt);
        const s = held.get(String(r._id));
        if (!s || s.deleted || s.version !== koboVersion(r) || (s.probe !== undefined && s.probe !== validationUid(r))) stale.push(r._id);
      }
      checked += page.records.length;
      // Re-fetched once a full `$in` list is due, not per page: a few edits spread over a large
      // form cost a request per 200 of them instead of one per page of the walk.
      const due = stale.length >= KOBO_REFETCH_CHUNK ? stale.splice(0, stale.length - (stale.length % KOBO_REFETCH_CHUNK)) : [];
      const submissions = await this.refetch(formId, due, opts.signal);
      refetched += submissions.length;
      yield { submissions, checked, total };
    }
    if (stale.length) {
      const submissions = await this.refetch(formId, stale.splice(0), opts.signal);
      refetched += submissions.length;
      yield { submissions, checked, total };
    }

    // An `_id` key is seen when the walk returned that `_id`; a uuid key when a record carried it —
    // or when it was stored after the sweep began (not among those read first: left for the next sweep).
    const seen = (key: string) => (/^[0-9]+$/.test(key) ? String(Number(key)) === key && ids.has(Number(key)) : !uuidKeyed.has(key) || alternates.has(key));
    let deleted = 0;
    for await (const tombstones of tombstonePages(this.sourceId, formId, stored, seen)) {
      deleted += tombstones.length;
      for (let i = 0; i < tombstones.length; i += KOBO_MAX_PAGE) yield { submissions: tombstones.slice(i, i + KOBO_MAX_PAGE), checked, total };
    }
    this.logger?.info({ sourceId: this.sourceId, formId, checked, refetched, deleted }, 'kobo sweep done');
  }

  /** Full records for these `_id`s, in chunks (a record deleted since the key walk is simply absent). */
  private async refetch(formId: string, ids: number[], signal?: AbortSignal): Promise<CanonicalSubmission[]> {
    const out: CanonicalSubmission[] = [];
    for (let i = 0; i < ids.length; i += KOBO_REFETCH_CHUNK) {
      const chunk = ids.slice(i, i + KOBO_REFETCH_CHUNK);
      for await (const page of this.walk(formId, { after: 0, in: chunk, signal })) {
        out.push(...page.records.map((r) => this.canonical(formId, r, page.observedAt, 'sweep')));
      }
    }
    return out;
  }

  private canonical(formId: string, r: KoboRecord, observedAt: Date, via: CanonicalSubmission['via']): CanonicalSubmission {
    try {
      return toCanonical(r, { sourceId: this.sourceId, formId, observedAt, via });
    } catch (e) {
      throw new Error(`kobo ${this.sourceId}/${formId} record _id=${String(r._id)}: ${(e as Error).message}`, { cause: e });
    }
  }

  /**
   * Keyset walk over `/data/`: `query={"_id":{"$gt":N}}` (N a JSON number — a
   * string matches nothing in Mongo; `or`, when given, is ANDed as `$or`),
   * `sort={"_id":1}`, then N = the page's last `_id`, until the server reports no `next`.
   */
  private async *walk(
    formId: string,
    o: { after: number; fields?: string[]; in?: number[]; or?: Record<string, unknown>[]; signal?: AbortSignal },
  ): AsyncGenerator<WalkPage> {
    const url = new URL(`api/v2/assets/${encodeURIComponent(formId)}/data/`, this.base);
    let after = o.after;
    let count: number | undefined;
    for (;;) {
      const query = { _id: { $gt: after, ...(o.in ? { $in: o.in } : {}) }, ...(o.or ? { $or: o.or } : {}) };
      const searchParams: Record<string, string> = {
        format: 'json',
        limit: String(this.limit),
        sort: JSON.stringify({ _id: 1 }),
        query: JSON.stringify(query),
      };
      if (o.fields) searchParams.fields = JSON.stringify(o.fields);
      const page = await this.get(url, searchParams, o.signal);
      const observedAt = new Date();
      const records = page.results.map((r) => {
        if (typeof r._id !== 'number' || !Number.isSafeInteger(r._id)) throw new Error(`kobo ${this.sourceId}/${formId}: a record without an integer "_id": ${JSON.stringify(r).slice(0, 200)}`);
        return r as KoboRecord & { _id: number };
      });
      count ??= page.count;
      this.logger?.debug({ sourceId: this.sourceId, formId, after, received: records.length, count: page.count }, 'kobo page');
      yield { records, count, observedAt };
      if (!page.next || records.length === 0) return;
      const last = records.at(-1)!._id;
      // Guards against a server that ignores the query: the keyset must move forward.
      if (last <= after) throw new Error(`kobo ${this.sourceId}/${formId}: page did not advance past _id ${after}`);
      after = last;
    }
  }

  private async get(url: URL, searchParams: Record<string, string>, signal?: AbortSignal): Promise<z.infer<typeof Envelope>> {
    let body: unknown;
    try {
      body = jsonBody(await this.http.get(url, { searchParams, signal }));
    } catch (e) {
      if (e instanceof HTTPError) {
        const detail = String(e.response.body ?? '').slice(0, 300);
        // A bad or revoked token (401), or an account without access to the form (403): not transient.
        const status = e.response.statusCode;
        if (status === 401 || status === 403) {
          throw new AuthError(status === 401 ? 'Kobo token refused' : `Kobo refused access to ${url.pathname}`, 'token (and the environment variable it is read from)', `${status}: ${detail}`, status);
        }
        throw new Error(`kobo ${this.sourceId}: HTTP ${e.response.statusCode} from ${url.pathname}: ${detail}`, { cause: e });
      }
      throw e;
    }
    const parsed = Envelope.safeParse(body);
    if (!parsed.success) throw new Error(`kobo ${this.sourceId}: unexpected answer from ${url.pathname}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    return parsed.data;
  }
}
