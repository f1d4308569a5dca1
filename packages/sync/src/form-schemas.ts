import type { CanonicalSubmission } from '@fieldsync/model';
import { knownFormVersions, loadFormSchemas, saveFormSchemas, type Database } from '@fieldsync/db';
import { AuthError, type SourceConnector } from '@fieldsync/connectors';
import type { Logger } from '@fieldsync/logger';

/*
 * Keeps `FormSchema` current: each version's definition is read once from the
 * source and stored. Reads are cheap (one request when nothing is new) but not
 * free, so a poll asks at most every FORM_SCHEMA_INTERVAL_MS per form, plus
 * whenever a record carries a version we do not hold; sweeps and backfills ask
 * every time.
 */

/** How often a poll asks the source for new form versions (per form, per process). */
export const FORM_SCHEMA_INTERVAL_MS = 15 * 60_000;

interface FormState {
  /** When the source was last asked (successfully or not). */
  checkedAt: number;
  /** Versions records carried that the source did not list (Kobo's legacy `_version_` ids): when we last tried. */
  unlisted: Map<string, number>;
}

// Per connector object, so each poller (and each test's connector) starts afresh.
const state = new WeakMap<SourceConnector, Map<string, FormState>>();
function formState(connector: SourceConnector, formId: string): FormState {
  let forms = state.get(connector);
  if (!forms) state.set(connector, (forms = new Map()));
  let s = forms.get(formId);
  if (!s) forms.set(formId, (s = { checkedAt: -Infinity, unlisted: new Map() }));
  return s;
}

export interface RefreshOptions {
  /** Ask the source even if it was asked recently (sweeps, backfills, unknown versions). */
  force?: boolean;
  signal?: AbortSignal;
  /** Default FORM_SCHEMA_INTERVAL_MS. */
  minIntervalMs?: number;
  now?: () => number;
}

export interface RefreshResult {
  /** Versions stored by this call, oldest first. */
  added: string[];
  /** Every version stored now. */
  known: Set<string>;
  /** Why the source was not asked. */
  skipped?: 'unsupported' | 'recent';
}

/**
 * Reads the definitions of the form's versions not yet in `FormSchema` and
 * stores them. Throws what the source or the database throws.
 */
export async function refreshFormSchemas(db: Database, connector: SourceConnector, formId: string, opts: RefreshOptions = {}): Promise<RefreshResult> {
  if (!connector.formDefinitions) return { added: [], known: new Set(), skipped: 'unsupported' };
  const known = await knownFormVersions(db, connector.sourceId, formId);
  const now = opts.now ?? Date.now;
  const s = formState(connector, formId);
  if (!opts.force && known.size > 0 && now() - s.checkedAt < (opts.minIntervalMs ?? FORM_SCHEMA_INTERVAL_MS)) return { added: [], known, skipped: 'recent' };
  // A failing source is asked again after the interval, not on every poll.
  s.checkedAt = now();
  const defs = await connector.formDefinitions(formId, { known, signal: opts.signal, stored: () => loadFormSchemas(db, connector.sourceId, formId) });
  await saveFormSchemas(db, defs);
  for (const d of defs) known.add(d.version);
  return { added: defs.map((d) => d.version), known };
}

/** What a sync run needs: a refresh when it starts, and one when a page carries an unknown version. */
export interface FormSchemaWatch {
  /** Refreshes when these records carry a form version not stored yet (and not tried lately). */
  observe(submissions: readonly CanonicalSubmission[]): Promise<void>;
}

/**
 * Starts watching a form's definitions for one sync run: refreshes now (forced
 * for sweeps and backfills, else at most every FORM_SCHEMA_INTERVAL_MS). A
 * definition that cannot be read never fails the run — it is logged and asked
 * again later — except when the source refuses our credentials or the run is
 * aborted: those fail the run as any request would.
 */
export async function watchFormSchemas(
  deps: { db: Database; log: Logger },
  connector: SourceConnector,
  formId: string,
  opts: { mode: 'poll' | 'sweep' | 'backfill'; signal?: AbortSignal; minIntervalMs?: number },
): Promise<FormSchemaWatch> {
  const { db, log } = deps;
  const sourceId = connector.sourceId;
  let known = new Set<string>();
  const attempt = async (force: boolean, why: string) => {
    try {
      const r = await refreshFormSchemas(db, connector, formId, { force, signal: opts.signal, minIntervalMs: opts.minIntervalMs });
      known = r.known;
      if (r.added.length) log.info({ sourceId, formId, versions: r.added, why }, 'form definitions stored');
    } catch (err) {
      if (err instanceof AuthError || opts.signal?.aborted) throw err;
      log.warn({ sourceId, formId, why, err: err instanceof Error ? err.message : String(err) }, 'could not read the form definition; the run goes on, the next one asks again');
    }
  };
  if (!connector.formDefinitions) return { observe: async () => {} };
  await attempt(opts.mode !== 'poll', `${opts.mode} run`);
  if (!connector.formVersionOf) return { observe: async () => {} };
  const versionOf = connector.formVersionOf.bind(connector);
  const s = formState(connector, formId);
  const interval = opts.minIntervalMs ?? FORM_SCHEMA_INTERVAL_MS;

  return {
    async observe(submissions) {
      const now = Date.now();
      const unknown = new Set<string>();
      for (const sub of submissions) {
        const v = versionOf(sub);
        if (v === undefined || known.has(v)) continue;
        const tried = s.unlisted.get(v);
        if (tried === undefined || now - tried >= interval) unknown.add(v);
      }
      if (unknown.size === 0) return;
      await attempt(true, `records carry version(s) ${[...unknown].join(', ')}`);
      // Still unknown after asking: the source does not list it (old Kobo ids); the tables fall back to the latest.
      for (const v of unknown) if (!known.has(v)) s.unlisted.set(v, now);
    },
  };
}
