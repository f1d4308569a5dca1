/**
 * What the loader and the CLI use: definitions from FormSchema, plans cached
 * per (source, form, known versions), planning + DDL under the lock before
 * the ingest transaction, typed writes inside it.
 */
import type { Database, Sql } from '@fieldsync/db';
import { FormDefinition, recordId, type CanonicalSubmission } from '@fieldsync/model';
import { ensureDictionary, planForm, validateTarget, withPlanningLock, type Plan, type Target } from './schema.ts';
import { applyTypedRows, rebuildForm, refreshStale, storedCopies, type ApplyResult, type RebuildResult } from './write.ts';
import type { StoredRow } from './rows.ts';

export interface SourceTablesOptions {
  enabled?: boolean;
  /** formId → table name for the form's own table. */
  names?: Record<string, string>;
  choiceColumns?: boolean;
}

export interface TablesOptions {
  enabled?: boolean;
  /** PostgreSQL schema of the typed tables (default `fieldsync`). */
  schema?: string;
  /** MySQL table-name prefix (default none). */
  prefix?: string;
  sources?: Record<string, SourceTablesOptions>;
  /** How long a cached plan is trusted before FormSchema is looked at again. */
  refreshMs?: number;
}

export interface TablesLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

const silent: TablesLog = { info() {}, warn() {}, error() {} };

interface Cached {
  signature: string;
  versions: Set<string>;
  /** null: no definition stored yet (remembered too, so a form without one costs no query per batch). */
  plan: Plan | null;
  checkedAt: number;
}

/** A record's form version as it names it (Kobo `__version__`, ODK `__system.formVersion`). */
export function recordFormVersion(data: unknown): string | null {
  if (typeof data !== 'object' || data === null) return null;
  const d = data as { __version__?: unknown; __system?: { formVersion?: unknown } };
  const v = d.__version__ ?? d.__system?.formVersion;
  return typeof v === 'string' && v ? v : null;
}

/** Definitions of a form, oldest first; rows that do not parse are skipped (and logged). */
export async function loadDefinitions(db: Database, sourceId: string, formId: string, log: TablesLog = silent): Promise<{ defs: FormDefinition[]; signature: string }> {
  const rows = await db.prisma.formSchema.findMany({ where: { sourceId, formId }, orderBy: [{ fetchedAt: 'asc' }, { version: 'asc' }] });
  const defs: FormDefinition[] = [];
  for (const r of rows) {
    const parsed = FormDefinition.safeParse(r.definition);
    if (parsed.success) defs.push({ ...parsed.data, sourceId, formId });
    else log.warn({ sourceId, formId, version: r.version, error: parsed.error.issues.slice(0, 3) }, 'FormSchema definition does not parse; ignored for typed tables');
  }
  return { defs, signature: rows.map((r) => `${r.version}@${r.fetchedAt.toISOString()}`).join('|') };
}

export interface BatchResult extends ApplyResult {
  /** Type conflicts of the forms written (`source/form path: bigint → text`), for the run's SyncRun row. */
  typeChanges: string[];
}

export interface PreparedBatch {
  /**
   * Writes the typed rows of the batch's keys; call inside the raw upsert's transaction,
   * after it, with the copies it reports inserted (PostgreSQL; null: read every row back)
   * and the records it wrote at all (recordId; PostgreSQL): the others were no-ops, whose
   * typed rows stand as they are. null: every key of the batch is written.
   */
  apply(sql: Sql, inserted?: readonly CanonicalSubmission[] | null, written?: ReadonlySet<string> | null): Promise<BatchResult>;
}

/** A copy the upsert inserted, as its Submission row reads (the same fields the read-back selects). */
function storedOf(s: CanonicalSubmission): StoredRow {
  return { key: s.key, version: s.version, submittedAt: s.submittedAt, updatedAt: s.updatedAt, deleted: s.deleted, data: s.data };
}

/** One line per type conflict of a plan: which question, which column types it has had. */
export function typeChangeNotes(plan: Plan): string[] {
  return plan.logical.conflicts.map((c) => `${plan.sourceId}/${plan.formId} ${c.path}: ${c.storages.join(' → ')} (old column kept, new one added)`);
}

export class TypedTables {
  readonly target: Target;
  private readonly cache = new Map<string, Cached>();
  /** Forms whose typed rows missed batches (planning or writing failed): rewritten in full on the next success. */
  private readonly stale = new Set<string>();
  private dictionaryReady = false;

  constructor(
    private readonly dialect: Database['dialect'],
    private readonly opts: TablesOptions = {},
    private readonly log: TablesLog = silent,
  ) {
    this.target = validateTarget({ dialect, schema: opts.schema ?? 'fieldsync', prefix: opts.prefix ?? '' });
  }

  enabledFor(sourceId: string): boolean {
    return (this.opts.enabled ?? true) && (this.opts.sources?.[sourceId]?.enabled ?? true);
  }

  /** The plan for a form, planning (and creating tables) when its definitions changed; null when it has none. */
  async plan(db: Database, sourceId: string, formId: string, seenVersions: string[] = [], force = false): Promise<Plan | null> {
    const id = `${sourceId}\0${formId}`;
    const cached = this.cache.get(id);
    const now = Date.now();
    const refresh = this.opts.refreshMs ?? 30_000;
    // A record of a version this plan does not know: look again now (another loader or the
    // poller may just have stored it), so its answers are not written with an older layout.
    const unknown = seenVersions.some((v) => !cached?.versions.has(v));
    if (cached && !force && !unknown && now - cached.checkedAt < refresh) return cached.plan;
    const { defs, signature } = await loadDefinitions(db, sourceId, formId, this.log);
    if (defs.length === 0) {
      this.cache.set(id, { signature, versions: new Set(), plan: null, checkedAt: now });
      return null;
    }
    if (cached && !force && cached.signature === signature) {
      cached.checkedAt = now;
      return cached.plan;
    }
    const src = this.opts.sources?.[sourceId] ?? {};
    const plan = await withPlanningLock(db, async (sql) => {
      if (!this.dictionaryReady) await ensureDictionary(sql, this.target);
      return planForm(sql, this.target, defs, { name: src.names?.[formId], choiceColumns: src.choiceColumns ?? false });
    });
    this.dictionaryReady = true;
    if (plan.refresh && !force) {
      const r = await refreshStale(db, plan);
      if (r.records) this.log.info({ sourceId, formId, records: r.records }, 'typed tables: rows typed with an older layout (or none) rewritten for the new form definition');
    }
    if (plan.added.length) this.log.info({ sourceId, formId, columns: plan.added.length, sample: plan.added.slice(0, 10) }, 'typed tables: columns added');
    for (const c of plan.logical.conflicts) {
      this.log.warn({ sourceId, formId, path: c.path, types: c.storages }, 'typed tables: a question changed type; the old column is kept and a new one added');
    }
    this.cache.set(id, { signature, versions: new Set(defs.map((d) => d.version)), plan, checkedAt: now });
    return plan;
  }

  /**
   * Before the ingest transaction: plans (DDL cannot share MySQL's transaction)
   * the forms of the batch. Forms without a definition are skipped: their raw
   * rows still load and a later rebuild fills their tables.
   */
  async prepare(db: Database, batch: CanonicalSubmission[]): Promise<PreparedBatch | null> {
    const groups = new Map<string, { sourceId: string; formId: string; copies: CanonicalSubmission[]; versions: Set<string> }>();
    for (const s of batch) {
      if (!this.enabledFor(s.sourceId)) continue;
      const id = `${s.sourceId}\0${s.formId}`;
      let g = groups.get(id);
      if (!g) groups.set(id, (g = { sourceId: s.sourceId, formId: s.formId, copies: [], versions: new Set() }));
      g.copies.push(s);
      const v = recordFormVersion(s.data);
      if (v) g.versions.add(v);
    }
    const work: { id: string; plan: Plan; copies: CanonicalSubmission[] }[] = [];
    for (const [id, g] of groups) {
      // The analyst layer never holds up the raw one: a form whose planning fails loads raw
      // rows only, and is marked stale, to be rewritten in full once planning works again.
      try {
        const plan = await this.plan(db, g.sourceId, g.formId, [...g.versions]);
        if (!plan) continue;
        if (this.stale.has(id)) {
          const r = await refreshStale(db, { ...plan, refresh: { except: null } });
          this.stale.delete(id);
          this.log.info({ sourceId: g.sourceId, formId: g.formId, records: r.records }, 'typed tables: stale form rewritten from Submission');
        }
        work.push({ id, plan, copies: g.copies });
      } catch (err) {
        this.markStale(id, g, err);
      }
    }
    if (work.length === 0) return null;
    return {
      apply: async (sql, inserted, written) => {
        const total: BatchResult = { records: 0, childRows: 0, unfit: 0, typeChanges: [] };
        for (const w of work) {
          // A re-delivery of what is stored changed no raw row, so no typed row either.
          const copies = written ? w.copies.filter((c) => written.has(recordId(c))) : w.copies;
          const keys = copies.map((c) => c.key);
          if (keys.length === 0) {
            total.typeChanges.push(...typeChangeNotes(w.plan));
            continue;
          }
          // A savepoint, so a failure here rolls back only the typed rows and the raw ones still commit.
          await sql.execute('SAVEPOINT fieldsync_typed');
          let r: ApplyResult;
          try {
            // PostgreSQL says which copies it inserted; on MySQL the rows that hold a batch's copy are found by a probe.
            const mine = inserted
              ? inserted.filter((s) => s.sourceId === w.plan.sourceId && s.formId === w.plan.formId)
              : this.dialect === 'mysql' ? await storedCopies(sql, w.plan, copies) : undefined;
            r = await applyTypedRows(sql, w.plan, keys, { inserted: mine?.map(storedOf) });
          } catch (err) {
            // A dead connection fails this too: then the whole transaction fails, as it must.
            await sql.execute('ROLLBACK TO SAVEPOINT fieldsync_typed').catch(() => Promise.reject(err));
            this.markStale(w.id, w.plan, err);
            continue;
          }
          await sql.execute('RELEASE SAVEPOINT fieldsync_typed');
          total.records += r.records;
          total.childRows += r.childRows;
          total.unfit += r.unfit;
          total.typeChanges.push(...typeChangeNotes(w.plan));
          if (r.unfit) this.log.warn({ sourceId: w.plan.sourceId, formId: w.plan.formId, unfit: r.unfit }, 'typed tables: answers that do not fit their column loaded as NULL (raw JSON intact)');
        }
        return total;
      },
    };
  }

  private markStale(id: string, f: { sourceId: string; formId: string }, err: unknown): void {
    this.stale.add(id);
    this.cache.delete(id); // plan again from scratch next time (re-creates a dropped table or column)
    this.log.error({ sourceId: f.sourceId, formId: f.formId, err: err instanceof Error ? err.message : String(err) }, 'typed tables: could not write this form\'s typed rows; raw rows load, the form is rewritten once this works again (or run tables rebuild)');
  }

  /**
   * Rewrites the typed rows of a few submissions from `Submission` + `Attachment`, in a
   * transaction of their own: the attachment worker calls it once it has recorded a file,
   * so `<question>_stored` shows the location even when the typed row was written first.
   * Returns the submissions written (0: typed tables off, no definition, or no such row).
   */
  async applyKeys(db: Database, sourceId: string, formId: string, keys: string[]): Promise<number> {
    if (!this.enabledFor(sourceId) || keys.length === 0) return 0;
    const plan = await this.plan(db, sourceId, formId);
    if (!plan) return 0;
    // Locking read: waits for an ingest transaction rewriting the same submission, then sees its row.
    const r = await db.transaction((sql) => applyTypedRows(sql, plan, keys, { lock: true }));
    return r.records;
  }

  /** `tables rebuild`: the source's forms (or one), from `Submission` (file locations from `Attachment`). */
  async rebuild(db: Database, sourceId: string, formId?: string): Promise<(RebuildResult & { formId: string; tables: string[] })[]> {
    if (!this.enabledFor(sourceId)) throw new Error(`typed tables are switched off for source "${sourceId}" (tables.enabled in the config)`);
    const forms = formId
      ? [formId]
      : [
          ...new Set([
            ...(await db.prisma.formSchema.findMany({ where: { sourceId }, select: { formId: true } })).map((r) => r.formId),
          ]),
        ].sort();
    const out: (RebuildResult & { formId: string; tables: string[] })[] = [];
    for (const f of forms) {
      const plan = await this.plan(db, sourceId, f, [], true);
      if (!plan) {
        this.log.warn({ sourceId, formId: f }, 'no form definition stored yet; nothing to rebuild');
        continue;
      }
      const r = await rebuildForm(db, plan);
      out.push({ ...r, formId: f, tables: plan.tables.map((t) => t.name) });
    }
    return out;
  }
}
