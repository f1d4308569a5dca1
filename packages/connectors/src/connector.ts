import type { CanonicalSubmission, FormDefinition } from '@fieldsync/model';
import type { StoredVersion, StoredIndex, Cursor } from '@fieldsync/db';

export type { Cursor, StoredVersion, StoredIndex };

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
   * and versions with what we store: edits, deletions, restores. `stored` is read
   * page by page (never held whole): memory stays flat in the size of the form.
   */
  sweep(formId: string, stored: StoredIndex, opts?: { signal?: AbortSignal }): AsyncIterable<SweepPage>;
  /**
   * A backfill (`sync --initialize`) is a full reload: after a complete walk the
   * runner marks deleted every stored record the walk did not return (Socrata).
   */
  readonly reconcileOnBackfill?: boolean;
  /** Gives back what the connector holds at the source (an ODK session): one-off runs call it when done. */
  close?(): Promise<void>;
  /**
   * Normalised definitions of the form's deployed (Kobo) / published (ODK)
   * versions whose version is not in `known` (all when omitted), oldest first.
   * `stored` reads the definitions already stored: a connector that infers them
   * from the data (REST) starts from those, so it never narrows a type.
   */
  formDefinitions?(formId: string, opts?: { known?: ReadonlySet<string>; signal?: AbortSignal; stored?: () => Promise<FormDefinition[]> }): Promise<FormDefinition[]>;
  /** The form version a record says it was filled in with (Kobo `__version__`, ODK `__system.formVersion`). */
  formVersionOf?(submission: CanonicalSubmission): string | undefined;
}

/**
 * The source refused our credentials (wrong password, revoked token, no access).
 * Not transient: a retry sends the same credentials and fills the server's log
 * with failed logins, so the poller stops the job until its next scheduled run.
 */
export class AuthError extends Error {
  override name = 'AuthError';
  constructor(
    /** What was refused: "ODK login refused", "Kobo token refused". */
    readonly what: string,
    /** The config keys to fix, relative to the source: "auth.session.email/password", "token". */
    readonly credential: string,
    /** What the server answered, e.g. "401.2: Could not authenticate with the provided credentials." */
    readonly detail: string,
    readonly status?: number,
    /** The server's own error code, when it has them (ODK Central: 401.2, 401.3, 403.1). */
    readonly code?: number,
  ) {
    super(`${what}: check the source's ${credential} (${detail})`);
  }

  /** The message naming the key's full path in the config file: `at('sources[0]')`. */
  at(sourcePath: string): string {
    return `${this.what}: check ${sourcePath}.${this.credential} (${this.detail})`;
  }
}

/** A webhook body that cannot be turned into submissions; the message is shown to the sender. */
export class PayloadError extends Error {
  override name = 'PayloadError';
}

/** What the ingress knows besides the body (e.g. `?formId=` when a payload subset drops the form id). */
export interface WebhookHints {
  formId?: string;
  /** Where the record sits inside a wrapping body (`webhook.recordPath`, dot-separated keys). */
  recordPath?: string;
  /** Paths (`group/rep`) of the form's repeats, from its stored definition: XML alone cannot tell a one-entry repeat from a group. */
  repeatPaths?: string[];
}

/** Turns one webhook body into canonical submissions, or throws PayloadError. */
export type WebhookParser = (sourceId: string, body: unknown, receivedAt: Date, hints?: WebhookHints) => CanonicalSubmission[];
/** The same for an XML body (the raw text); throws PayloadError. */
export type XmlWebhookParser = (sourceId: string, xml: string, receivedAt: Date, hints?: WebhookHints) => CanonicalSubmission[];

/** Tombstones for these stored rows that are live and not `seen`, carrying the stored version and times (a tombstone must not look newer than what it hides). */
export function tombstonesFor(sourceId: string, formId: string, stored: Iterable<StoredVersion>, seen: (key: string) => boolean): CanonicalSubmission[] {
  const observedAt = new Date().toISOString();
  const out: CanonicalSubmission[] = [];
  for (const s of stored) {
    if (s.deleted || seen(s.key)) continue;
    out.push({ sourceId, formId, key: s.key, version: s.version, updatedAt: s.updatedAt.toISOString(), submittedAt: s.submittedAt.toISOString(), deleted: true, deletedAt: observedAt, observedAt, data: {}, via: 'sweep' });
  }
  return out;
}

/**
 * Tombstones for every live stored row not `seen`, a chunk of `stored.live()` at a
 * time (empty chunks skipped). Call it only after a complete walk.
 */
export async function* tombstonePages(sourceId: string, formId: string, stored: StoredIndex, seen: (key: string) => boolean): AsyncGenerator<CanonicalSubmission[]> {
  for await (const rows of stored.live()) {
    const gone = tombstonesFor(sourceId, formId, rows, seen);
    if (gone.length) yield gone;
  }
}

/**
 * A StoredIndex over a map, for connector unit tests: reads the map when asked
 * (no cut-off), `live()` in key order and chunks of `chunk`.
 */
export function storedIndexOf(map: ReadonlyMap<string, StoredVersion>, opts: { chunk?: number } = {}): StoredIndex {
  const chunk = opts.chunk ?? 1000;
  return {
    async lookup(keys) {
      const out = new Map<string, StoredVersion>();
      for (const k of keys) {
        const s = map.get(k);
        if (s) out.set(k, s);
      }
      return out;
    },
    async *live(o = {}) {
      const rows = [...map.values()].filter((s) => !s.deleted && (o.keys !== 'non-numeric' || !/^[0-9]+$/.test(s.key))).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      for (let i = 0; i < rows.length; i += chunk) yield rows.slice(i, i + chunk);
    },
  };
}
