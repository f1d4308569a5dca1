import { z } from 'zod';

/** How a submission reached us. */
export const Via = z.enum(['webhook', 'poll', 'backfill', 'sweep', 'replay']);
export type Via = z.infer<typeof Via>;

const IsoTime = z.iso.datetime({ offset: true });

/**
 * The canonical submission: every connector, webhook or poll, produces this.
 * Timestamps are ISO-8601 strings so a job payload survives JSON round trips.
 */
export const CanonicalSubmission = z.object({
  sourceId: z.string().min(1).max(64),
  formId: z.string().min(1).max(191),
  /** Identity across edits (Kobo `_id`, ODK `__id`). */
  key: z.string().min(1).max(191),
  /** Identity of this version (instanceID). */
  version: z.string().min(1).max(191),
  /**
   * The version this one replaces, where the source links an edit to its
   * predecessor (Kobo `meta/deprecatedID`). Orders versions by lineage when the
   * source has no edit time.
   */
  replaces: z.string().min(1).max(191).nullable().optional(),
  /** When the source last changed it; with `version`, orders versions (newest wins). */
  updatedAt: IsoTime,
  submittedAt: IsoTime,
  /** True when the source says the record is gone (a tombstone). */
  deleted: z.boolean().default(false),
  /** When the source deleted it, if it says. */
  deletedAt: IsoTime.nullable().optional(),
  /** When fieldsync read this from the source; orders delete/restore observations. */
  observedAt: IsoTime,
  /**
   * The record exactly as the source sent it. Not z.record: that rebuilds the
   * object by assignment, which drops an own `__proto__` key; this keeps the object.
   */
  data: z.custom<Record<string, unknown>>((v) => typeof v === 'object' && v !== null && !Array.isArray(v), { message: 'expected a JSON object' }),
  via: Via,
});
export type CanonicalSubmission = z.infer<typeof CanonicalSubmission>;
export type CanonicalSubmissionInput = z.input<typeof CanonicalSubmission>;

/** Newest wins: compare updatedAt, tie-break on version. Positive when a is newer. */
export function compareVersions(a: Pick<CanonicalSubmission, 'updatedAt' | 'version'>, b: Pick<CanonicalSubmission, 'updatedAt' | 'version'>): number {
  const t = Date.parse(a.updatedAt) - Date.parse(b.updatedAt);
  if (t !== 0) return t;
  return a.version < b.version ? -1 : a.version > b.version ? 1 : 0;
}

type Versioned = Pick<CanonicalSubmission, 'updatedAt' | 'version' | 'replaces' | 'via' | 'deleted' | 'observedAt'>;

/**
 * Which of two copies of one record is newer; positive when `a` is. `superseded`
 * holds the versions of this record known to be replaced by another (every
 * `replaces` seen). The same order as the upsert's SQL (packages/db submissions.ts):
 *
 * Same version: the source API's copy beats a webhook copy (a webhook may carry a
 * field subset), never the reverse; otherwise a later updatedAt with other data
 * (an ODK review, a Kobo validation status) wins, then the later observation.
 *
 * Different versions, first rule that decides:
 *  1. lineage: a version beats the one it replaces;
 *  2. a version known to be superseded loses to one that is not;
 *  3. an edit (it replaces something) beats an original (a Kobo record has one);
 *  4. the API's copy beats a webhook's: it is current when it is read, while a
 *     webhook body may have been read long before it arrived;
 *  5. (updatedAt, version), the order of sources with an edit time (ODK).
 * Two edits whose link is missing (a version in between never seen) can only be
 * ordered by 4 and 5; the sweep then re-reads the source's current version.
 */
export function compareCopies(a: Versioned, b: Versioned, superseded: ReadonlySet<string> = new Set()): number {
  if (a.version === b.version) {
    const aApi = a.via !== 'webhook';
    const bApi = b.via !== 'webhook';
    // A tombstone carries the stored version: its deletion state, not its data, is news.
    if (aApi !== bApi && !a.deleted && !b.deleted) return aApi ? 1 : -1;
    return Date.parse(a.updatedAt) - Date.parse(b.updatedAt) || Date.parse(a.observedAt) - Date.parse(b.observedAt);
  }
  if (a.replaces === b.version) return 1;
  if (b.replaces === a.version) return -1;
  const aSup = superseded.has(a.version);
  const bSup = superseded.has(b.version);
  if (aSup !== bSup) return aSup ? -1 : 1;
  const aEdit = a.replaces != null;
  const bEdit = b.replaces != null;
  if (aEdit !== bEdit) return aEdit ? 1 : -1;
  const aApi = a.via !== 'webhook';
  const bApi = b.via !== 'webhook';
  if (aApi !== bApi) return aApi ? 1 : -1;
  return compareVersions(a, b);
}

/** The identity of a record across edits, as one string: (source, form, key). */
export const recordId = (s: Pick<CanonicalSubmission, 'sourceId' | 'formId' | 'key'>): string => `${s.sourceId}\u0000${s.formId}\u0000${s.key}`;

/**
 * Keeps one submission per (source, form, key): the newest by {@link compareCopies},
 * with the lineage the batch shows plus `known` (recordId → versions already
 * known superseded, e.g. read from the database: without it a copy the batch
 * cannot place could push out the newest). A multi-row upsert may not touch the
 * same row twice. Sorted by key, so concurrent transactions lock rows in one order.
 */
export function newestPerKey(batch: CanonicalSubmission[], known?: ReadonlyMap<string, ReadonlySet<string>>): CanonicalSubmission[] {
  const groups = new Map<string, CanonicalSubmission[]>();
  for (const s of batch) {
    const id = recordId(s);
    const g = groups.get(id);
    if (g) g.push(s);
    else groups.set(id, [s]);
  }
  const out: CanonicalSubmission[] = [];
  for (const [id, g] of groups) {
    if (g.length === 1) {
      out.push(g[0]!);
      continue;
    }
    const superseded = new Set(known?.get(id));
    for (const s of g) if (s.replaces) superseded.add(s.replaces);
    // Pairwise rules need not be transitive across gaps; prefer a copy no other copy beats.
    let best = g[0]!;
    for (const s of g.slice(1)) if (compareCopies(s, best, superseded) >= 0) best = s;
    out.push(best);
  }
  return out.sort((a, b) => cmpStr(a.sourceId, b.sourceId) || cmpStr(a.formId, b.formId) || cmpStr(a.key, b.key));
}

const cmpStr = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
