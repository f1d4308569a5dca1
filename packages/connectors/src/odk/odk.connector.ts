import { z } from 'zod';
import type { OdkSourceConfig } from '@fieldsync/config';
import type { Logger } from '@fieldsync/logger';
import type { CanonicalSubmission, FormDefinition } from '@fieldsync/model';
import type { Cursor, PullOptions, PullPage, SourceConnector, StoredIndex, StoredVersion, SweepPage } from '../connector.ts';
import { createHttpClient } from '../http.ts';
import { OdkBasicAuth, OdkSessionAuth } from './odk.auth.ts';
import { OdkClient, OdkError, odataQuery, type FeedPage } from './odk.client.ts';
import { KeyRow, isoMs, toCanonical } from './odk.mapping.ts';
import { OdkSchemaReader, odkFormVersion } from './odk.schema.ts';

/** The stored position of an ODK form: the newest Central timestamp the last poll can vouch for. */
export interface OdkCursor extends Cursor {
  /** ISO, milliseconds; null: start from the beginning. */
  since: string | null;
}

const CursorShape = z.object({ since: z.iso.datetime({ offset: true }).nullable() });

export function parseOdkCursor(cursor: Cursor | null): string | null {
  if (cursor === null) return null;
  const c = CursorShape.safeParse(cursor);
  if (!c.success) throw new OdkError(`not an ODK Central cursor: ${JSON.stringify(cursor)}`);
  return c.data.since === null ? null : isoMs(c.data.since);
}

const FormList = z.array(z.looseObject({ xmlFormId: z.string().min(1), publishedAt: z.string().nullish() }));

/** `__id eq '…' or …` per request: keeps the URL well under proxies' 8 KB limit. */
const IDS_PER_REQUEST = 50;
const SELECT_KEYS = '__id,__system/updatedAt,__system/deletedAt';

const later = (a: string | null, b: string) => (a === null || Date.parse(b) > Date.parse(a) ? b : a);
const literal = (s: string) => `'${s.replace(/'/g, "''")}'`;

export interface OdkConnectorDeps {
  logger?: Logger;
  onResponse?: (status: string) => void;
}

/**
 * ODK Central has no webhooks: its OData feed is polled. Central has no `$orderby`
 * with paging (501 once a skiptoken is involved), so a walk goes newest-first through
 * keyset pages, and the cursor is only safe to store at the end of the walk.
 */
export class OdkConnector implements SourceConnector {
  readonly kind = 'odk';
  readonly sourceId: string;
  private readonly client: OdkClient;

  constructor(
    private readonly source: OdkSourceConfig,
    deps: OdkConnectorDeps = {},
  ) {
    this.sourceId = source.id;
    const base = new URL(source.baseUrl);
    const http = createHttpClient({ policy: source.http, logger: deps.logger, sourceId: source.id, onResponse: deps.onResponse, headers: { accept: 'application/json' } });
    const auth =
      'session' in source.auth
        ? new OdkSessionAuth(http, new URL(`${base.pathname.replace(/\/+$/, '')}/v1/sessions`, base.origin), source.auth.session, deps.logger, source.id)
        : new OdkBasicAuth(source.auth.basic.email, source.auth.basic.password);
    this.client = new OdkClient(http, base, auth);
  }

  /** Logs the session out (`DELETE /v1/sessions/current`); the next request logs in again. */
  async close(): Promise<void> {
    await this.client.close();
  }

  /** Published versions' definitions not in `known` (see odk.schema.ts). */
  async formDefinitions(formId: string, opts: { known?: ReadonlySet<string>; signal?: AbortSignal } = {}): Promise<FormDefinition[]> {
    return new OdkSchemaReader(this.client, this.source.projectId, this.sourceId).definitions(formId, opts);
  }

  formVersionOf(s: CanonicalSubmission): string | undefined {
    return odkFormVersion(s.data);
  }

  /** The configured forms, or every published form of the project, asked anew each time so new forms join. */
  async listForms(signal?: AbortSignal): Promise<string[]> {
    if (this.source.forms !== '*') return [...this.source.forms];
    const url = this.client.url(`/v1/projects/${this.source.projectId}/forms`);
    const forms = FormList.safeParse(await this.client.get(url, signal));
    if (!forms.success) throw new OdkError(`unexpected forms list from ODK Central: ${z.prettifyError(forms.error)}`);
    // A never-published form has no OData feed yet (404.1); it is picked up once published.
    return forms.data.filter((f) => f.publishedAt != null).map((f) => f.xmlFormId);
  }

  /*
   * One poll = a walk of new/changed rows, then (from the second poll on) a walk of
   * rows deleted since the cursor. Both are newest-first keyset walks, and the
   * server keeps changing while we page:
   *
   * - A row created or changed after we read page 1 of the change walk may never show
   *   up in this walk (new rows sort before the keyset position; an edit of a row we
   *   already passed is not seen again). Every such change is stamped at or after the
   *   moment page 1 was read.
   * - So the cursor must not pass that moment. The largest timestamp *on page 1* is a
   *   safe bound (page 1 is one snapshot; all it shows happened before it was read).
   *   The largest timestamp of the whole walk is not: an edit seen on page 3 can be
   *   stamped after a submission created mid-walk that we never saw, and `ge` that
   *   edit's time would skip the submission forever.
   * - Deletion timestamps never raise the cursor for the same reason (that walk runs
   *   after page 1); the deletion walk filters from the *previous* cursor, so deletions
   *   made during the change walk are in it, and later ones are after the new cursor.
   * - `ge`, not `gt`: timestamps tie at the millisecond. The price is a deliberate
   *   overlap: every poll re-reads the rows stamped exactly at the cursor (and, after a
   *   multi-page walk, what changed between page 1's newest stamp and the walk's end).
   *   Upserts are idempotent, so a re-read loads nothing new.
   * - Restores change no timestamp at all: only the sweep finds them.
   *
   * Rows are de-duplicated by `__id` within each walk; a row may appear in both walks
   * (live, then deleted), and the tombstone, observed later, wins.
   */
  async *pull(formId: string, cursor: Cursor | null, opts: PullOptions): AsyncGenerator<PullPage> {
    const since = parseOdkCursor(cursor);
    // Filters start `overlapMs` before the cursor (late commits); the cursor itself never moves back.
    const from = since === null ? null : new Date(Date.parse(since) - this.source.overlapMs).toISOString();
    const ctx = (page: FeedPage) => ({ sourceId: this.sourceId, formId, via: opts.via, observedAt: page.observedAt });
    let next = since;
    let total: number | undefined;
    let first = true;

    const changed = this.feed(formId, {
      $filter: from === null ? undefined : `__system/submissionDate ge ${from} or __system/updatedAt ge ${from}`,
      $expand: '*',
      $top: String(this.source.pageSize),
      $count: 'true',
    }, opts.signal);
    const seen = new Set<string>();
    for await (const page of changed) {
      const submissions = unique(page.rows, seen, (r) => toCanonical(r, ctx(page)));
      if (first) {
        first = false;
        total = page.count;
        for (const s of submissions) next = later(later(next, s.submittedAt), s.updatedAt);
      }
      // First poll: nothing stored can have been deleted, so the walk ends here.
      const end = page.last && since === null;
      yield { submissions, total, ...(end ? { cursor: { since: next } satisfies OdkCursor } : {}) };
    }
    if (since === null) return;

    const deleted = this.feed(formId, { $filter: `__system/deletedAt ge ${from}`, $expand: '*', $top: String(this.source.pageSize), $count: 'true' }, opts.signal);
    const gone = new Set<string>();
    for await (const page of deleted) {
      const submissions = unique(page.rows, gone, (r) => toCanonical(r, ctx(page)));
      yield { submissions, total: (total ?? 0) + (page.count ?? 0), ...(page.last ? { cursor: { since: next } satisfies OdkCursor } : {}) };
    }
  }

  /*
   * Compares Central's keys with ours: `$select` gives `__id` and the two timestamps
   * cheaply (no `$expand`: the two together are 501.11). Deleted rows are not in the
   * default feed, so they are listed separately (`deletedAt ne null`). Re-fetched in
   * full: rows we lack, rows whose updatedAt differs (an edit or review the poll
   * missed), rows we hold as deleted (a restore: Central does not touch updatedAt).
   * Tombstones: rows we hold as present that are now deleted, or gone (purged).
   */
  async *sweep(formId: string, stored: StoredIndex, opts: { signal?: AbortSignal } = {}): AsyncGenerator<SweepPage> {
    const signal = opts.signal;
    let checked = 0;
    let trashCount = 0;
    const trash = new Set<string>();
    for await (const page of this.feed(formId, { $select: SELECT_KEYS, $filter: '__system/deletedAt ne null', $top: String(this.source.pageSize), $count: 'true' }, signal)) {
      for (const row of page.rows) trash.add(keyRow(row).__id);
      checked += page.rows.length;
      trashCount = page.count ?? trash.size;
    }

    // The keys Central lists; what we hold is looked up a page at a time.
    const live = new Set<string>();
    for await (const page of this.feed(formId, { $select: SELECT_KEYS, $top: String(this.source.pageSize), $count: 'true' }, signal)) {
      const rows = page.rows.map(keyRow);
      const held = await stored.lookup(rows.map((r) => r.__id));
      const refetch: string[] = [];
      for (const row of rows) {
        live.add(row.__id);
        if (differs(held.get(row.__id), row)) refetch.push(row.__id);
      }
      checked += rows.length;
      yield { submissions: await this.fetchByIds(formId, refetch, false, signal), checked, total: trashCount + (page.count ?? live.size) };
    }

    // Stored live rows Central no longer lists, a chunk of what we hold at a time.
    let none = true;
    for await (const rows of stored.live()) {
      const missing = rows.filter((s) => !live.has(s.key));
      if (missing.length === 0) continue;
      // Deleted rows come back in full (a tombstone with their last version); one restored
      // meanwhile is no longer matched and waits for the next sweep.
      const tombstones = await this.fetchByIds(formId, missing.filter((s) => trash.has(s.key)).map((s) => s.key), true, signal);
      const observedAt = new Date().toISOString();
      for (const s of missing) {
        if (trash.has(s.key)) continue;
        // Purged: nothing left to read. Same (updatedAt, version) as stored, so the upsert
        // only flips the deleted flag and never touches the stored data with this empty one.
        tombstones.push({
          sourceId: this.sourceId, formId, key: s.key, version: s.version,
          updatedAt: s.updatedAt.toISOString(), submittedAt: s.submittedAt.toISOString(),
          deleted: true, deletedAt: null, observedAt, data: {}, via: 'sweep',
        });
      }
      none = false;
      yield { submissions: tombstones, checked, total: checked };
    }
    // The final count, when nothing was gone.
    if (none) yield { submissions: [], checked, total: checked };
  }

  /** Full rows by `__id`, in chunks; `deleted` asks for soft-deleted ones (only a filter on deletedAt shows them). */
  private async fetchByIds(formId: string, ids: string[], deleted: boolean, signal?: AbortSignal): Promise<CanonicalSubmission[]> {
    const out: CanonicalSubmission[] = [];
    for (let i = 0; i < ids.length; i += IDS_PER_REQUEST) {
      const anyOf = ids.slice(i, i + IDS_PER_REQUEST).map((id) => `__id eq ${literal(id)}`).join(' or ');
      const $filter = deleted ? `(${anyOf}) and __system/deletedAt ne null` : anyOf;
      for await (const page of this.feed(formId, { $filter, $expand: '*' }, signal))
        for (const row of page.rows) out.push(toCanonical(row, { sourceId: this.sourceId, formId, via: 'sweep', observedAt: page.observedAt }));
    }
    return out;
  }

  private feed(formId: string, params: Record<string, string | undefined>, signal?: AbortSignal): AsyncGenerator<FeedPage> {
    const path = `/v1/projects/${this.source.projectId}/forms/${encodeURIComponent(formId)}.svc/Submissions`;
    return this.client.feed(`${path}?${odataQuery(params)}`, signal);
  }
}

function unique(rows: unknown[], seen: Set<string>, map: (row: unknown) => CanonicalSubmission): CanonicalSubmission[] {
  const out: CanonicalSubmission[] = [];
  for (const row of rows) {
    const s = map(row);
    if (seen.has(s.key)) continue;
    seen.add(s.key);
    out.push(s);
  }
  return out;
}

function keyRow(row: unknown): KeyRow {
  const r = KeyRow.safeParse(row);
  if (!r.success) throw new OdkError(`unexpected key row from ODK Central: ${z.prettifyError(r.error)}`);
  return r.data;
}

/** Does Central's (live) row differ from what we store? */
function differs(s: StoredVersion | undefined, row: KeyRow): boolean {
  if (!s) return true; // never loaded: the filters missed it
  if (s.deleted) return true; // restored
  const updatedAt = row.__system.updatedAt;
  // Never edited or reviewed: we store submissionDate as updatedAt.
  if (updatedAt == null) return s.updatedAt.getTime() !== s.submittedAt.getTime();
  return Date.parse(updatedAt) !== s.updatedAt.getTime();
}
