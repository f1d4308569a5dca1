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
  /** When the source last changed it; with `version`, orders versions (newest wins). */
  updatedAt: IsoTime,
  submittedAt: IsoTime,
  /** True when the source says the record is gone (a tombstone). */
  deleted: z.boolean().default(false),
  /** When the source deleted it, if it says. */
  deletedAt: IsoTime.nullable().optional(),
  /** When fieldsync read this from the source; orders delete/restore observations. */
  observedAt: IsoTime,
  /** The record exactly as the source sent it. */
  data: z.record(z.string(), z.unknown()),
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

/**
 * Keeps one submission per (source, form, key): the newest, and for equal versions
 * the latest observation. A multi-row upsert may not touch the same row twice.
 */
export function newestPerKey(batch: CanonicalSubmission[]): CanonicalSubmission[] {
  const best = new Map<string, CanonicalSubmission>();
  for (const s of batch) {
    const id = `${s.sourceId}\u0000${s.formId}\u0000${s.key}`;
    const cur = best.get(id);
    if (!cur) {
      best.set(id, s);
      continue;
    }
    const c = compareVersions(s, cur);
    if (c > 0 || (c === 0 && Date.parse(s.observedAt) >= Date.parse(cur.observedAt))) best.set(id, s);
  }
  return [...best.values()];
}
