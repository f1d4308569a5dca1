/**
 * Naming, the data dictionary and DDL. Everything here runs under one
 * database-wide lock (PostgreSQL advisory lock / MySQL GET_LOCK) so several
 * loaders planning at once agree: the dictionary is read first, names already
 * chosen are kept forever, new ones are chosen and persisted, and tables and
 * columns are only ever added.
 */
import { createHash } from 'node:crypto';
import type { Database, Dialect, Sql } from '@fieldsync/db';
import type { FormDefinition } from '@fieldsync/model';
import { SQL_TYPE, type Storage } from './coerce.ts';
import { IDENT_LIMIT, hash8, literal, q, shorten, slug, uniqueName } from './ident.ts';
import { logicalPlan, type LogicalPlan, type PlanOptions } from './plan.ts';

export interface Target {
  dialect: Dialect;
  /** PostgreSQL schema for the typed tables and the dictionary. */
  schema: string;
  /** MySQL table-name prefix (MySQL has no schemas inside a database). */
  prefix: string;
}

export interface PhysColumn {
  ident: string;
  name: string;
  storage: Storage;
}

export interface PhysTable {
  id: string;
  name: string;
  parentId: string | null;
  columns: PhysColumn[];
  index: Map<string, number>;
}

export interface Plan {
  sourceId: string;
  formId: string;
  target: Target;
  logical: LogicalPlan;
  tables: PhysTable[];
  byId: Map<string, PhysTable>;
  /** Columns added by this planning (for the log). */
  added: string[];
  /**
   * Stored rows whose typed rows this planning makes stale, for the caller to rewrite:
   * null = none; `except: null` = all (the form had no tables: rows loaded before its
   * first definition); `except: [...]` = rows of any version but these (a new version
   * arrived: its rows, and rows of unknown versions, were typed with an older layout).
   */
  refresh: { except: string[] | null } | null;
}

export interface FormTableOptions extends PlanOptions {
  /** The form's table name from config; otherwise the form's title. */
  name?: string;
}

export const SYSTEM_PARENT = ['_key', '_version', '_submitted_at', '_updated_at', '_deleted', '_form_version', '_review_state'] as const;
export const SYSTEM_CHILD = ['_key', '_parent', '_root', '_index'] as const;
// fieldsync's own tables (lower-cased): a form titled "Submission" must not land next to them on MySQL.
const RESERVED_TABLES = ['submission', 'supersededversion', 'syncstate', 'syncrun', 'deadletter', 'formschema', 'importlog', '_prisma_migrations'];

const sha1 = (s: string) => createHash('sha1').update(s).digest('hex');

/** A relation name as SQL: schema-qualified on PostgreSQL; on MySQL the name already carries the prefix. */
export function rel(t: Target, name: string): string {
  return t.dialect === 'postgresql' ? `${q(t.dialect, t.schema)}.${q(t.dialect, name)}` : q(t.dialect, name);
}

export const dictionaryNames = (t: Target) => ({
  tables: `${t.prefix}_fieldsync_tables`,
  columns: `${t.prefix}_fieldsync_columns`,
  choices: `${t.prefix}_fieldsync_choices`,
  versions: `${t.prefix}_fieldsync_versions`,
});

export function validateTarget(t: Target): Target {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(t.schema)) throw new Error(`tables.schema: ${JSON.stringify(t.schema)} is not a safe schema name ([a-z_][a-z0-9_]*)`);
  if (!/^[a-z0-9_]{0,20}$/.test(t.prefix)) throw new Error(`tables.prefix: ${JSON.stringify(t.prefix)} is not a safe prefix ([a-z0-9_], at most 20)`);
  return t;
}

/** Runs fn holding the planning lock, on one connection. */
export async function withPlanningLock<T>(db: Database, fn: (sql: Sql) => Promise<T>): Promise<T> {
  if (db.dialect === 'postgresql') {
    return db.transaction(async (sql) => {
      await sql.query(`SELECT pg_advisory_xact_lock(hashtext('fieldsync.tables'))`);
      return fn(sql);
    });
  }
  // GET_LOCK is per server: name it after the database. DDL commits implicitly on MySQL; the lock survives that.
  return db.transaction(async (sql) => {
    const [r] = await sql.query<{ ok: number | null }>(`SELECT GET_LOCK(LEFT(CONCAT('fieldsync_tables:', DATABASE()), 64), 120) AS ok`);
    if (Number(r?.ok) !== 1) throw new Error('could not take the typed-tables planning lock within 120 s');
    try {
      return await fn(sql);
    } finally {
      await sql.query(`SELECT RELEASE_LOCK(LEFT(CONCAT('fieldsync_tables:', DATABASE()), 64))`);
    }
  });
}

export async function ensureDictionary(sql: Sql, t: Target): Promise<void> {
  const d = dictionaryNames(t);
  const pg = t.dialect === 'postgresql';
  const ts = pg ? 'timestamptz' : 'DATETIME(3)';
  const now = pg ? 'now()' : 'CURRENT_TIMESTAMP(3)';
  const txt = pg ? 'text' : 'TEXT';
  if (pg) await sql.execute(`CREATE SCHEMA IF NOT EXISTS ${q(t.dialect, t.schema)}`);
  await sql.execute(`CREATE TABLE IF NOT EXISTS ${rel(t, d.tables)} (
  source_id VARCHAR(64) NOT NULL, form_id VARCHAR(191) NOT NULL, path_hash CHAR(40) NOT NULL,
  repeat_path ${txt} NOT NULL, table_name VARCHAR(64) NOT NULL, parent_table VARCHAR(64) NULL, label ${txt} NULL,
  created_at ${ts} NOT NULL DEFAULT ${now},
  PRIMARY KEY (source_id, form_id, path_hash), UNIQUE (table_name))`);
  await sql.execute(`CREATE TABLE IF NOT EXISTS ${rel(t, d.columns)} (
  source_id VARCHAR(64) NOT NULL, form_id VARCHAR(191) NOT NULL, ident_hash CHAR(40) NOT NULL,
  path ${txt} NOT NULL, part VARCHAR(200) NOT NULL, table_name VARCHAR(64) NOT NULL, column_name VARCHAR(64) NOT NULL,
  column_type VARCHAR(32) NOT NULL, field_type VARCHAR(32) NOT NULL, label ${txt} NULL,
  created_at ${ts} NOT NULL DEFAULT ${now},
  PRIMARY KEY (source_id, form_id, ident_hash), UNIQUE (table_name, column_name))`);
  await sql.execute(`CREATE TABLE IF NOT EXISTS ${rel(t, d.choices)} (
  source_id VARCHAR(64) NOT NULL, form_id VARCHAR(191) NOT NULL, list_name VARCHAR(191) NOT NULL,
  choice_name VARCHAR(191) NOT NULL, language VARCHAR(64) NOT NULL, label ${txt} NULL,
  PRIMARY KEY (source_id, form_id, list_name, choice_name, language))`);
  await sql.execute(`CREATE TABLE IF NOT EXISTS ${rel(t, d.versions)} (
  source_id VARCHAR(64) NOT NULL, form_id VARCHAR(191) NOT NULL, version VARCHAR(191) NOT NULL,
  planned_at ${ts} NOT NULL DEFAULT ${now},
  PRIMARY KEY (source_id, form_id, version))`);
}

interface DictTable { path_hash: string; table_name: string }
interface DictColumn { ident_hash: string; table_name: string; column_name: string }

async function existingRelations(sql: Sql, t: Target): Promise<Set<string>> {
  const rows = t.dialect === 'postgresql'
    ? await sql.query<{ n: string }>(`SELECT table_name AS n FROM information_schema.tables WHERE table_schema = ?`, [t.schema])
    : await sql.query<{ n: string }>(`SELECT table_name AS n FROM information_schema.tables WHERE table_schema = DATABASE()`);
  return new Set(rows.map((r) => r.n.toLowerCase()));
}

async function existingColumns(sql: Sql, t: Target, table: string): Promise<Set<string>> {
  const rows = t.dialect === 'postgresql'
    ? await sql.query<{ n: string }>(`SELECT column_name AS n FROM information_schema.columns WHERE table_schema = ? AND table_name = ?`, [t.schema, table])
    : await sql.query<{ n: string }>(`SELECT column_name AS n FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ?`, [table]);
  return new Set(rows.map((r) => r.n));
}

function systemColumnsDdl(t: Target, child: boolean): string {
  const pg = t.dialect === 'postgresql';
  const key = pg ? 'text' : 'VARCHAR(191)';
  const ckey = pg ? 'text' : 'VARCHAR(512)';
  const ts = SQL_TYPE[t.dialect].timestamp;
  const txt = pg ? 'text' : 'TEXT';
  const bool = SQL_TYPE[t.dialect].boolean;
  if (child) {
    return [`${q(t.dialect, '_key')} ${ckey} NOT NULL PRIMARY KEY`, `${q(t.dialect, '_parent')} ${ckey} NOT NULL`, `${q(t.dialect, '_root')} ${key} NOT NULL`, `${q(t.dialect, '_index')} INTEGER NOT NULL`].join(', ');
  }
  return [
    `${q(t.dialect, '_key')} ${key} NOT NULL PRIMARY KEY`, `${q(t.dialect, '_version')} ${txt} NULL`,
    `${q(t.dialect, '_submitted_at')} ${ts} NULL`, `${q(t.dialect, '_updated_at')} ${ts} NULL`,
    `${q(t.dialect, '_deleted')} ${bool} NOT NULL`, `${q(t.dialect, '_form_version')} ${txt} NULL`, `${q(t.dialect, '_review_state')} ${txt} NULL`,
  ].join(', ');
}

const MYSQL_COMMENT_MAX = 1024;

/**
 * Names every table and column of the form (reusing the dictionary's choices),
 * persists new names, creates what is missing. Call under {@link withPlanningLock}.
 */
export async function planForm(sql: Sql, t: Target, defs: FormDefinition[], opts: FormTableOptions = {}): Promise<Plan> {
  const { sourceId, formId } = defs[0]!;
  const logical = logicalPlan(defs, opts);
  const d = dictionaryNames(t);
  const limit = IDENT_LIMIT[t.dialect];
  const pg = t.dialect === 'postgresql';

  const allTables = await sql.query<DictTable & { source_id: string; form_id: string }>(`SELECT source_id, form_id, path_hash, table_name FROM ${rel(t, d.tables)}`);
  const mine = new Map(allTables.filter((r) => r.source_id === sourceId && r.form_id === formId).map((r) => [r.path_hash, r.table_name]));
  const relations = await existingRelations(sql, t);
  const takenTables = new Set([...allTables.map((r) => r.table_name), ...relations, ...RESERVED_TABLES.map((n) => t.prefix + n)]);
  const isTaken = (logicalName: string) => takenTables.has(t.prefix + logicalName) || logicalName.startsWith('_fieldsync');
  const tableLimit = limit - t.prefix.length;

  const names = new Map<string, string>();
  const newTables: { id: string; name: string; parent: string | null; label: string }[] = [];
  for (const spec of logical.tables) {
    const hash = sha1(spec.id);
    let name = mine.get(hash);
    if (!name) {
      let logicalName: string;
      if (spec.parentId === null) {
        const preferred = shorten(slug(opts.name || logical.title || formId), tableLimit);
        // Another source's form holds the name: prefix ours with the source id, then fall back to a hash.
        const withSource = shorten(`${slug(sourceId)}_${preferred}`, tableLimit);
        logicalName = !isTaken(preferred) ? preferred : uniqueName(withSource, `${sourceId}/${formId}`, tableLimit, isTaken);
      } else {
        const parent = names.get(spec.parentId)!.slice(t.prefix.length);
        logicalName = uniqueName(`${parent}__${spec.segment}`, `${sourceId}/${formId}/${spec.id}`, tableLimit, isTaken);
      }
      name = t.prefix + logicalName;
      takenTables.add(name);
      newTables.push({ id: spec.id, name, parent: spec.parentId === null ? null : names.get(spec.parentId)!, label: spec.label });
    }
    names.set(spec.id, name);
  }

  const dictCols = await sql.query<DictColumn>(`SELECT ident_hash, table_name, column_name FROM ${rel(t, d.columns)} WHERE source_id = ? AND form_id = ?`, [sourceId, formId]);
  const colByHash = new Map(dictCols.map((c) => [c.ident_hash, c.column_name]));
  const takenCols = new Map<string, Set<string>>();
  for (const spec of logical.tables) {
    const tn = names.get(spec.id)!;
    takenCols.set(tn, new Set<string>(spec.parentId === null ? SYSTEM_PARENT : SYSTEM_CHILD));
  }
  for (const c of dictCols) takenCols.get(c.table_name)?.add(c.column_name);

  const tables = new Map<string, PhysTable>();
  for (const spec of logical.tables) tables.set(spec.id, { id: spec.id, name: names.get(spec.id)!, parentId: spec.parentId, columns: [], index: new Map() });
  const newCols: { table: string; name: string; ident: string; path: string; part: string; storage: Storage; fieldType: string; label: string }[] = [];
  for (const c of logical.columns) {
    const table = tables.get(c.tableId)!;
    const hash = sha1(c.ident);
    let name = colByHash.get(hash);
    if (!name) {
      const taken = takenCols.get(table.name)!;
      name = uniqueName(c.preferred, c.ident, limit, (n) => taken.has(n));
      taken.add(name);
      newCols.push({ table: table.name, name, ident: c.ident, path: c.path, part: c.part, storage: c.storage, fieldType: c.fieldType, label: c.label });
    }
    table.index.set(c.ident, table.columns.length);
    table.columns.push({ ident: c.ident, name, storage: c.storage });
  }

  // DDL: tables first (parents before children), then missing columns.
  const added: string[] = [];
  for (const spec of logical.tables) {
    const table = tables.get(spec.id)!;
    const child = spec.parentId !== null;
    // MySQL 8 knows no CREATE INDEX / ADD COLUMN IF NOT EXISTS: the index goes inline, columns are checked first.
    const inlineIndex = child && !pg ? `, INDEX (${q(t.dialect, '_root')})` : '';
    await sql.execute(`CREATE TABLE IF NOT EXISTS ${rel(t, table.name)} (${systemColumnsDdl(t, child)}${inlineIndex})`);
    if (child && pg) {
      // PostgreSQL index names share the schema's namespace: keep them distinct like the tables.
      const idx = `${table.name.slice(0, limit - 16)}_${hash8(table.name)}_root`;
      await sql.execute(`CREATE INDEX IF NOT EXISTS ${q(t.dialect, idx)} ON ${rel(t, table.name)} (${q(t.dialect, '_root')})`);
    }
    const have = await existingColumns(sql, t, table.name);
    const labels = new Map(logical.columns.filter((c) => c.tableId === spec.id).map((c) => [c.ident, c.label]));
    const missing = table.columns.filter((c) => !have.has(c.name));
    if (missing.length === 0) continue;
    const type = (s: Storage) => SQL_TYPE[t.dialect][s];
    if (pg) {
      await sql.execute(`ALTER TABLE ${rel(t, table.name)} ${missing.map((c) => `ADD COLUMN IF NOT EXISTS ${q(t.dialect, c.name)} ${type(c.storage)}`).join(', ')}`);
      for (const c of missing) {
        const label = labels.get(c.ident);
        if (label) await sql.execute(`COMMENT ON COLUMN ${rel(t, table.name)}.${q(t.dialect, c.name)} IS ${literal(t.dialect, label)}`);
      }
    } else {
      const comment = (c: PhysColumn) => {
        const label = labels.get(c.ident);
        return label ? ` COMMENT ${literal(t.dialect, label.slice(0, MYSQL_COMMENT_MAX))}` : '';
      };
      await sql.execute(`ALTER TABLE ${rel(t, table.name)} ${missing.map((c) => `ADD COLUMN ${q(t.dialect, c.name)} ${type(c.storage)} NULL${comment(c)}`).join(', ')}`);
    }
    added.push(...missing.map((c) => `${table.name}.${c.name}`));
  }

  if (newTables.length) {
    await sql.execute(
      `INSERT INTO ${rel(t, d.tables)} (source_id, form_id, path_hash, repeat_path, table_name, parent_table, label) VALUES ${newTables.map(() => '(?, ?, ?, ?, ?, ?, ?)').join(', ')}`,
      newTables.flatMap((n) => [sourceId, formId, sha1(n.id), n.id, n.name, n.parent, n.label]),
    );
  }
  for (let i = 0; i < newCols.length; i += 500) {
    const chunk = newCols.slice(i, i + 500);
    await sql.execute(
      `INSERT INTO ${rel(t, d.columns)} (source_id, form_id, ident_hash, path, part, table_name, column_name, column_type, field_type, label) VALUES ${chunk.map(() => '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)').join(', ')}`,
      chunk.flatMap((c) => [sourceId, formId, sha1(c.ident), c.path, c.part.slice(0, 200), c.table, c.name, SQL_TYPE[t.dialect][c.storage], c.fieldType, c.label]),
    );
  }
  // Labels change with versions: the dictionary shows the newest.
  for (const c of logical.columns) {
    if (colByHash.has(sha1(c.ident))) await updateLabelIfChanged(sql, t, sourceId, formId, sha1(c.ident), c.label);
  }

  // Choice labels: the union over versions, newest label wins; rewritten whenever the plan is.
  await sql.execute(`DELETE FROM ${rel(t, d.choices)} WHERE source_id = ? AND form_id = ?`, [sourceId, formId]);
  const choices = logical.choices.filter((c) => c.list.length <= 191 && c.name.length <= 191 && c.language.length <= 64);
  for (let i = 0; i < choices.length; i += 500) {
    const chunk = choices.slice(i, i + 500);
    await sql.execute(
      `INSERT INTO ${rel(t, d.choices)} (source_id, form_id, list_name, choice_name, language, label) VALUES ${chunk.map(() => '(?, ?, ?, ?, ?, ?)').join(', ')}`,
      chunk.flatMap((c) => [sourceId, formId, c.list, c.name, c.language, c.label]),
    );
  }

  const known = await sql.query<{ version: string }>(`SELECT version FROM ${rel(t, d.versions)} WHERE source_id = ? AND form_id = ?`, [sourceId, formId]);
  const fresh = [...logical.versions.keys()].filter((v) => !known.some((k) => k.version === v) && v.length <= 191);
  if (fresh.length) {
    await sql.execute(`INSERT INTO ${rel(t, d.versions)} (source_id, form_id, version) VALUES ${fresh.map(() => '(?, ?, ?)').join(', ')}`, fresh.flatMap((v) => [sourceId, formId, v]));
  }
  // A `_stored` column new to a file question whose name column (`<path>##text`) existed (an upgrade of fieldsync):
  // rows typed before it lack the locations a rebuild would show, whatever their version.
  const storedAdded = newCols.some((c) => c.part === 'stored' && colByHash.has(sha1(`${c.path}##text`)));
  return { sourceId, formId, target: t, logical, tables: logical.tables.map((s) => tables.get(s.id)!), byId: tables, added,
    refresh: mine.size === 0 || storedAdded ? { except: null } : fresh.length ? { except: known.map((k) => k.version) } : null,
  };
}

async function updateLabelIfChanged(sql: Sql, t: Target, sourceId: string, formId: string, hash: string, label: string): Promise<void> {
  const d = dictionaryNames(t);
  await sql.execute(
    `UPDATE ${rel(t, d.columns)} SET label = ? WHERE source_id = ? AND form_id = ? AND ident_hash = ? AND (label IS NULL OR label <> ?)`,
    [label, sourceId, formId, hash, label],
  );
}

/** Which column a system value goes to, for children and parents. */
export function systemColumns(child: boolean): readonly string[] {
  return child ? SYSTEM_CHILD : SYSTEM_PARENT;
}
