/**
 * Bulk writes of typed rows: for the submissions already in the typed tables,
 * DELETE … WHERE _key / _root IN (…), then bulk inserts (PostgreSQL: COPY per
 * table inside a transaction, else one json_populate_recordset parameter per
 * statement; MySQL/MariaDB: JSON_TABLE, MySQL ≥ 8.0.4 / MariaDB ≥ 10.6).
 * Never one round trip per record.
 */
import { crc32 } from 'node:zlib';
import { copyLine, type Database, type Dialect, type Sql } from '@fieldsync/db';
import type { CanonicalSubmission } from '@fieldsync/model';
import { SQL_TYPE } from './coerce.ts';
import { q } from './ident.ts';
import { locationKey, typedRows, type StoredLocations, type StoredRow } from './rows.ts';
import { SYSTEM_CHILD, SYSTEM_PARENT, rel, type Plan, type PhysTable } from './schema.ts';

/** Statements must stay well under MySQL's max_allowed_packet (16 MiB by default on MariaDB). */
const MAX_BYTES = 4 * 1024 * 1024;
const KEY_CHUNK = 1000;

/** The system columns' types as JSON_TABLE reads them (the same as the tables' own). */
const MY_SYSTEM_TYPES: Record<string, string> = {
  _key: 'VARCHAR(512)', _version: 'TEXT', _submitted_at: 'DATETIME(3)', _updated_at: 'DATETIME(3)', _deleted: 'BOOLEAN',
  _form_version: 'TEXT', _review_state: 'TEXT', _parent: 'VARCHAR(512)', _root: 'VARCHAR(191)', _index: 'INTEGER',
};

function columnNames(table: PhysTable): string[] {
  return [...(table.parentId === null ? SYSTEM_PARENT : SYSTEM_CHILD), ...table.columns.map((c) => c.name)];
}

function size(v: unknown): number {
  return typeof v === 'string' ? v.length + 3 : 8;
}

async function insertRows(sql: Sql, plan: Plan, table: PhysTable, rows: unknown[][]): Promise<void> {
  if (rows.length === 0) return;
  const d = plan.target.dialect;
  const cols = columnNames(table);
  if (d === 'postgresql' && sql.copyIn) {
    // Straight into the table: no statement to parse, no JSON to build and take apart; each
    // field goes through its column type's input function, as a cast from the JSON text would.
    await sql.copyIn(`COPY ${rel(plan.target, table.name)} (${cols.map((c) => q(d, c)).join(', ')}) FROM STDIN`, rows.map(copyLine));
    return;
  }
  if (d === 'postgresql') {
    // One JSON parameter per statement: PostgreSQL parses and plans it far faster than
    // thousands of placeholders, and json_populate_recordset casts to the column types.
    const list = cols.map((c) => q(d, c)).join(', ');
    const text = `INSERT INTO ${rel(plan.target, table.name)} (${list}) SELECT ${list} FROM json_populate_recordset(NULL::${rel(plan.target, table.name)}, ?::json)`;
    let objs: Record<string, unknown>[] = [];
    let bytes = 0;
    for (const r of rows) {
      const o: Record<string, unknown> = {};
      for (let i = 0; i < cols.length; i++) {
        if (r[i] === null) continue;
        o[cols[i]!] = r[i];
        bytes += size(r[i]) + cols[i]!.length;
      }
      objs.push(o);
      if (objs.length >= 2000 || bytes > MAX_BYTES) {
        await sql.execute(text, [JSON.stringify(objs)]);
        objs = [];
        bytes = 0;
      }
    }
    if (objs.length) await sql.execute(text, [JSON.stringify(objs)]);
    return;
  }
  // MySQL/MariaDB: the same idea through JSON_TABLE, rows as JSON arrays: one string to
  // escape instead of tens of thousands of values, and a short statement to parse.
  const types = [...(table.parentId === null ? SYSTEM_PARENT : SYSTEM_CHILD).map((n) => MY_SYSTEM_TYPES[n]!), ...table.columns.map((c) => SQL_TYPE.mysql[c.storage])];
  const text = `INSERT INTO ${rel(plan.target, table.name)} (${cols.map((c) => q(d, c)).join(', ')})
SELECT ${cols.map((_, i) => `j.c${i}`).join(', ')} FROM JSON_TABLE(?, '$[*]' COLUMNS (${types.map((t, i) => `c${i} ${t} PATH '$[${i}]'`).join(', ')})) AS j`;
  let chunk: unknown[][] = [];
  let bytes = 0;
  const flush = async () => {
    if (chunk.length === 0) return;
    await sql.execute(text, [JSON.stringify(chunk)]);
    chunk = [];
    bytes = 0;
  };
  for (const r of rows) {
    const b = r.reduce((n: number, v) => n + size(v), 0);
    if (chunk.length >= 2000 || (chunk.length > 0 && bytes + b > MAX_BYTES)) await flush();
    // JSON booleans into a BOOLEAN (TINYINT) column: as 1/0, which every version converts alike.
    chunk.push(r.map((v) => (v === true ? 1 : v === false ? 0 : v)));
    bytes += b;
  }
  await flush();
}

export interface ApplyResult {
  /** Submissions whose typed rows were written. */
  records: number;
  childRows: number;
  /** Answers that did not fit their column and were loaded as NULL. */
  unfit: number;
}

async function deleteIn(sql: Sql, plan: Plan, table: PhysTable, column: string, keys: string[]): Promise<void> {
  const d = plan.target.dialect;
  for (let i = 0; i < keys.length; i += KEY_CHUNK) {
    const part = keys.slice(i, i + KEY_CHUNK);
    await sql.execute(`DELETE FROM ${rel(plan.target, table.name)} WHERE ${q(d, column)} IN (${part.map(() => '?').join(', ')})`, part);
  }
}

/**
 * Where the files of these submissions were stored: one query per batch (the Attachment
 * table's unique key leads with sourceId, formId, submissionKey), none for forms without files.
 */
async function storedLocations(sql: Sql, plan: Plan, stored: StoredRow[]): Promise<StoredLocations> {
  const out = new Map<string, string>();
  if (stored.length === 0 || !plan.logical.columns.some((c) => c.part === 'stored')) return out;
  const k = (c: string) => (plan.target.dialect === 'postgresql' ? `"${c}"` : `\`${c}\``);
  const keys = stored.map((s) => s.key);
  for (let i = 0; i < keys.length; i += KEY_CHUNK) {
    const part = keys.slice(i, i + KEY_CHUNK);
    const rows = await sql.query<{ k: string; n: string; l: string }>(
      `SELECT ${k('submissionKey')} AS k, ${k('name')} AS n, ${k('location')} AS l FROM ${k('Attachment')}
WHERE ${k('sourceId')} = ? AND ${k('formId')} = ? AND ${k('submissionKey')} IN (${part.map(() => '?').join(', ')})`,
      [plan.sourceId, plan.formId, ...part],
    );
    for (const r of rows) out.set(locationKey(r.k, r.n), r.l);
  }
  return out;
}

/** Writes typed rows for `stored`; `keys` = those already in the typed tables, whose rows are replaced. */
async function write(sql: Sql, plan: Plan, stored: StoredRow[], keys: string[] = []): Promise<ApplyResult> {
  const d = plan.target.dialect;
  const typed = typedRows(plan, stored, d, await storedLocations(sql, plan, stored));
  let childRows = 0;
  for (const table of plan.tables) {
    const rows = typed.rows.get(table.id)!;
    if (table.parentId === null) {
      // Rows already there are replaced; in a backfill there are none and the insert is plain.
      if (keys.length) await deleteIn(sql, plan, table, '_key', keys);
      await insertRows(sql, plan, table, rows);
      continue;
    }
    // An edit replaces a submission's entries: one fewer repeat entry → one fewer row.
    if (keys.length) await deleteIn(sql, plan, table, '_root', keys);
    await insertRows(sql, plan, table, rows);
    childRows += rows.length;
  }
  return { records: stored.length, childRows, unfit: typed.unfit };
}

function selectStored(d: Dialect): string {
  return d === 'postgresql'
    ? `SELECT "key", "version", "submittedAt", "updatedAt", "deleted", "data" FROM "Submission" WHERE "sourceId" = ? AND "formId" = ?`
    : 'SELECT `key`, `version`, `submittedAt`, `updatedAt`, `deleted`, `data` FROM `Submission` WHERE `sourceId` = ? AND `formId` = ?';
}

/**
 * Rewrites the typed rows of `keys` from what `Submission` holds for them now,
 * inside the caller's transaction (right after the raw upsert): the typed
 * tables follow newest-wins because they are copied from the row that won.
 */
export async function applyTypedRows(sql: Sql, plan: Plan, keys: string[], opts: { lock?: boolean; inserted?: StoredRow[] } = {}): Promise<ApplyResult> {
  const d = plan.target.dialect;
  const total: ApplyResult = { records: 0, childRows: 0, unfit: 0 };
  const add = (r: ApplyResult) => {
    total.records += r.records;
    total.childRows += r.childRows;
    total.unfit += r.unfit;
  };
  // Rows this transaction's upsert inserted are exactly the copies in memory: typed from
  // them, without reading their JSON back (most of a backfill's cost). Timestamps finer
  // than the column's milliseconds would round in the database: those are read back.
  const fresh = new Map((opts.inserted ?? []).filter((r) => msPrecise(r.submittedAt) && msPrecise(r.updatedAt)).map((r) => [r.key, r]));
  const unique = [...new Set(keys)];
  const inMemory = unique.filter((k) => fresh.has(k));
  const parent = rel(plan.target, plan.byId.get('')!.name);
  for (let i = 0; i < inMemory.length; i += KEY_CHUNK) {
    const part = inMemory.slice(i, i + KEY_CHUNK);
    // A typed row without its Submission row (one deleted by hand) is replaced, not collided with.
    const typed = await sql.query<{ k: string }>(`SELECT ${q(d, '_key')} AS k FROM ${parent} WHERE ${q(d, '_key')} IN (${part.map(() => '?').join(', ')})`, part);
    add(await write(sql, plan, part.map((k) => fresh.get(k)!), typed.map((t) => t.k)));
  }
  const readBack = inMemory.length ? unique.filter((k) => !fresh.has(k)) : unique;
  for (let i = 0; i < readBack.length; i += KEY_CHUNK) {
    const part = readBack.slice(i, i + KEY_CHUNK);
    // A locking read where needed: on MySQL it sees the latest committed row whatever the
    // snapshot; outside the ingest transaction (a refresh) it keeps a concurrent upsert from
    // slipping in between. Inside it on PostgreSQL the upsert already holds every row.
    const lock = d === 'mysql' ? ' FOR UPDATE' : opts.lock ? ' FOR UPDATE OF s' : '';
    // Joined with the form's table: only submissions already there can have child rows to replace (none in a backfill).
    // Fixed column names only (Submission's are camelCase, which q() refuses by design).
    const k = (c: string) => (d === 'postgresql' ? `"${c}"` : `\`${c}\``);
    const stored = await sql.query<StoredRow & { typed: unknown }>(
      `SELECT s.${k('key')}, s.${k('version')}, s.${k('submittedAt')}, s.${k('updatedAt')}, s.${k('deleted')}, s.${k('data')}, t.${k('_key')} AS ${k('typed')}
FROM ${d === 'postgresql' ? '"Submission"' : '`Submission`'} s LEFT JOIN ${rel(plan.target, plan.byId.get('')!.name)} t ON t.${k('_key')} = s.${k('key')}
WHERE s.${k('sourceId')} = ? AND s.${k('formId')} = ? AND s.${k('key')} IN (${part.map(() => '?').join(', ')})${lock}`,
      [plan.sourceId, plan.formId, ...part],
    );
    add(await write(sql, plan, stored, stored.filter((x) => x.typed !== null).map((x) => x.key)));
  }
  return total;
}

/**
 * MySQL has no RETURNING: which of the batch's copies `Submission` now holds, found
 * without reading the JSON back (most of the typed layer's cost on MySQL). A stored row
 * is a copy when version, via, deletion state, both times and the CRC32 of the JSON text
 * match: a stored copy of the same version with other data (a REST Service field subset,
 * a validation status) differs in its text. MariaDB keeps JSON as the text sent; MySQL 8
 * stores it binary, so its CRC never matches and its rows are read back as before.
 * Locks the rows it reads, as the read-back does.
 */
export async function storedCopies<C extends Pick<CanonicalSubmission, 'key' | 'version' | 'via' | 'deleted' | 'updatedAt' | 'submittedAt' | 'data'>>(
  sql: Sql, plan: Plan, copies: readonly C[],
): Promise<C[]> {
  const byKey = new Map<string, C[]>();
  for (const c of copies) {
    const same = byKey.get(c.key);
    if (same) same.push(c);
    else byKey.set(c.key, [c]);
  }
  const keys = [...byKey.keys()];
  const out: C[] = [];
  for (let i = 0; i < keys.length; i += KEY_CHUNK) {
    const part = keys.slice(i, i + KEY_CHUNK);
    const rows = await sql.query<{ key: string; version: string; via: string; deleted: number | boolean; updatedAt: Date; submittedAt: Date; crc: number | string }>(
      `SELECT \`key\`, \`version\`, \`via\`, \`deleted\`, \`updatedAt\`, \`submittedAt\`, CRC32(\`data\`) AS crc FROM \`Submission\`
WHERE \`sourceId\` = ? AND \`formId\` = ? AND \`key\` IN (${part.map(() => '?').join(', ')}) FOR UPDATE`,
      [plan.sourceId, plan.formId, ...part],
    );
    for (const r of rows) {
      const same = byKey.get(r.key)?.find((c) =>
        c.version === r.version && c.via === r.via && c.deleted === Boolean(r.deleted)
        && Date.parse(c.updatedAt) === new Date(r.updatedAt).getTime() && Date.parse(c.submittedAt) === new Date(r.submittedAt).getTime()
        && crc32(JSON.stringify(c.data)) === Number(r.crc));
      if (same) out.push(same);
    }
  }
  return out;
}

/** A Date, or ISO text with at most millisecond digits (what a timestamp(3) column keeps unchanged). */
function msPrecise(v: Date | string): boolean {
  return v instanceof Date || !/\.\d{4,}/.test(v);
}

/**
 * Rewrites the typed rows a planning made stale (see Plan.refresh), in
 * transactions of {@link KEY_CHUNK} submissions: rows loaded before the form's
 * first definition, and rows typed with an older layout when a version arrives.
 */
export async function refreshStale(db: Database, plan: Plan): Promise<ApplyResult> {
  const total: ApplyResult = { records: 0, childRows: 0, unfit: 0 };
  if (!plan.refresh) return total;
  const d = plan.target.dialect;
  const except = plan.refresh.except;
  const version = d === 'postgresql'
    ? `COALESCE("data"->>'__version__', "data"->'__system'->>'formVersion', '')`
    : "COALESCE(JSON_UNQUOTE(JSON_EXTRACT(`data`, '$.__version__')), JSON_UNQUOTE(JSON_EXTRACT(`data`, '$.__system.formVersion')), '')";
  const filter = except && except.length ? ` AND ${version} NOT IN (${except.map(() => '?').join(', ')})` : '';
  const rows = await db.sql.query<{ key: string }>(
    d === 'postgresql'
      ? `SELECT "key" FROM "Submission" WHERE "sourceId" = ? AND "formId" = ?${filter}`
      : `SELECT \`key\` FROM \`Submission\` WHERE \`sourceId\` = ? AND \`formId\` = ?${filter}`,
    [plan.sourceId, plan.formId, ...(except ?? [])],
  );
  const keys = rows.map((r) => r.key);
  for (let i = 0; i < keys.length; i += KEY_CHUNK) {
    const r = await db.transaction((sql) => applyTypedRows(sql, plan, keys.slice(i, i + KEY_CHUNK), { lock: true }));
    total.records += r.records;
    total.childRows += r.childRows;
    total.unfit += r.unfit;
  }
  return total;
}

export interface RebuildResult extends ApplyResult {
  ms: number;
}

const REBUILD_PAGE = 2000;

/**
 * Empties the form's typed tables and refills them from `Submission` (file locations from `Attachment`), in one
 * transaction, reading it in keyset pages and writing multi-row statements.
 */
export async function rebuildForm(db: Database, plan: Plan): Promise<RebuildResult> {
  const start = Date.now();
  const d = plan.target.dialect;
  return db.transaction(async (sql) => {
    for (const table of [...plan.tables].reverse()) await sql.execute(`DELETE FROM ${rel(plan.target, table.name)}`);
    const total: RebuildResult = { records: 0, childRows: 0, unfit: 0, ms: 0 };
    let after: string | number = 0;
    for (;;) {
      const page: (StoredRow & { id: string | number })[] = await sql.query<StoredRow & { id: string | number }>(
        `${selectStored(d).replace('SELECT ', d === 'postgresql' ? 'SELECT "id", ' : 'SELECT `id`, ')} AND ${d === 'postgresql' ? '"id" > ?::bigint ORDER BY "id"' : '`id` > ? ORDER BY `id`'} LIMIT ${REBUILD_PAGE}`,
        [plan.sourceId, plan.formId, after],
      );
      if (page.length === 0) break;
      const r = await write(sql, plan, page);
      total.records += r.records;
      total.childRows += r.childRows;
      total.unfit += r.unfit;
      after = page[page.length - 1]!.id;
      if (page.length < REBUILD_PAGE) break;
    }
    total.ms = Date.now() - start;
    return total;
  });
}
