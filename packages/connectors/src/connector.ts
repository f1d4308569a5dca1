import type { CanonicalSubmission } from '@fieldsync/model';
import type { StoredVersion, Cursor } from '@fieldsync/db';

export type { Cursor, StoredVersion };

/** One page of an incremental pull. */
export interface PullPage {
  submissions: CanonicalSubmission[];
  /**
   * A cursor that is safe to persist once this page and every page before it
   * are durably enqueued. Absent while the walk cannot yet be resumed from
   * (e.g. ODK's newest-first feed: only the last page carries one).
   */
  cursor?: Cursor;
  /** How many records the whole walk will return, when the source says (progress bars). */
  total?: number;
}

/** One page of a sweep: re-fetched edits, restores, and tombstones for deletions. */
export interface SweepPage {
  submissions: CanonicalSubmission[];
  /** Keys compared so far / in all (progress). */
  checked: number;
  total?: number;
}

export interface PullOptions {
  via: 'poll' | 'backfill';
  signal?: AbortSignal;
}

/**
 * What a source platform offers fieldsync. Connectors only read from the
 * source and build canonical submissions; they never touch queues or tables.
 */
export interface SourceConnector {
  readonly sourceId: string;
  readonly kind: string;
  /** Forms to sync now: the configured list, or discovered from the source. */
  listForms(signal?: AbortSignal): Promise<string[]>;
  /** New and changed records since `cursor` (null: from the very beginning). */
  pull(formId: string, cursor: Cursor | null, opts: PullOptions): AsyncIterable<PullPage>;
  /**
   * A path into the stored `data` the sweep should also compare (`StoredVersion.probe`),
   * for changes the source makes without a new version (Kobo's validation status).
   */
  readonly sweepProbe?: string[];
  /**
   * Finds what the incremental pull cannot see by comparing the source's keys
   * and versions with what we store: edits, deletions, restores.
   */
  sweep(formId: string, stored: ReadonlyMap<string, StoredVersion>, opts?: { signal?: AbortSignal }): AsyncIterable<SweepPage>;
}

/** A webhook body that cannot be turned into submissions; the message is shown to the sender. */
export class PayloadError extends Error {
  override name = 'PayloadError';
}

/** What the ingress knows besides the body (e.g. `?formId=` when a payload subset drops the form id). */
export interface WebhookHints {
  formId?: string;
}

/** Turns one webhook body into canonical submissions, or throws PayloadError. */
export type WebhookParser = (sourceId: string, body: unknown, receivedAt: Date, hints?: WebhookHints) => CanonicalSubmission[];
