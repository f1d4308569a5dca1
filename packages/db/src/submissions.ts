import { createHash } from 'node:crypto';
import { Via, newestPerKey, recordId, type CanonicalSubmission } from '@fieldsync/model';
import { copyLine, type Database, type Sql } from './database.ts';
import { quoteIdent } from './dialect.ts';

/** Rows per MySQL INSERT statement: well under its 65,535 placeholders. */
export const UPSERT_CHUNK = 1000;
/**
 * JSON bytes per INSERT statement: MySQL refuses a statement larger than
 * max_allowed_packet (16 MiB by default on MariaDB), and forms with big repeats
 * can reach tens of kB per record.
 */
export const UPSERT_MAX_BYTES = 4 * 1024 * 1024;

const COLS = ['sourceId', 'formId', 'key', 'version', 'replaces', 'updatedAt', 'submittedAt', 'deleted', 'deletedAt', 'stateSeenAt', 'data', 'via'] as const;

/*
 * Newest wins, in SQL, per row — the order of compareCopies in @fieldsync/model
 * (read its comment for why each rule holds):
 *  newer — same version: the API's copy of it replaces a webhook's copy (a REST
 *          Service field subset, attachments not yet saved), never the reverse;
 *          else a later updatedAt with changed data (an ODK review, a Kobo
 *          validation status).
 *          Another version, first rule that decides: it replaces the stored one
 *          (win) or the stored one replaces it (lose); it is known superseded
 *          and the stored one is not (lose), or the reverse (win); an edit
 *          against an original; the API's copy against a webhook's; then
 *          (updatedAt, version).
 *  flip  — the deletion state differs and was observed no earlier than the stored one.
 * A re-delivery of the stored version matches neither and leaves the row untouched.
 * "Known superseded" reads SupersededVersion, which the same transaction fills first
 * from the batch's `replaces`.
 */
const pgSup = (version: string) =>
  `EXISTS (SELECT 1 FROM "SupersededVersion" v WHERE v."sourceId" = s."sourceId" AND v."formId" = s."formId" AND v."key" = s."key" AND v."version" = ${version})`;
const PG_NEWER = `(CASE WHEN EXCLUDED."version" = s."version" THEN
    NOT (EXCLUDED."via" = 'webhook' AND s."via" <> 'webhook')
    AND ((s."via" = 'webhook' AND EXCLUDED."via" <> 'webhook' AND NOT EXCLUDED."deleted") OR EXCLUDED."updatedAt" > s."updatedAt")
    AND EXCLUDED."data" IS DISTINCT FROM s."data"
  WHEN EXCLUDED."replaces" = s."version" THEN TRUE
  WHEN s."replaces" = EXCLUDED."version" THEN FALSE
  ELSE (SELECT CASE WHEN l.i <> l.st THEN l.st
      WHEN (EXCLUDED."replaces" IS NULL) <> (s."replaces" IS NULL) THEN EXCLUDED."replaces" IS NOT NULL
      WHEN (EXCLUDED."via" = 'webhook') <> (s."via" = 'webhook') THEN EXCLUDED."via" <> 'webhook'
      ELSE (EXCLUDED."updatedAt", EXCLUDED."version") > (s."updatedAt", s."version") END
    FROM (SELECT ${pgSup('EXCLUDED."version"')} AS i, ${pgSup('s."version"')} AS st) l)
END)`;
const PG_FLIP = `(EXCLUDED."deleted" <> s."deleted" AND EXCLUDED."stateSeenAt" >= s."stateSeenAt")`;

/**
 * Where a PostgreSQL batch is staged: COPY fills it, one INSERT … SELECT merges it.
 * COPY skips the parse and plan of a statement with 12 parameters per row, which
 * cost more than the writes themselves. Created once per connection (temporary
 * tables live as long as their session); emptied at every commit.
 */
const PG_STAGE = 'fs_submission_in';
const PG_STAGE_DDL = `CREATE TEMP TABLE IF NOT EXISTS ${PG_STAGE} (
  "sourceId" text, "formId" text, "key" text, "version" text, "replaces" text,
  "updatedAt" timestamptz(3), "submittedAt" timestamptz(3), "deleted" boolean, "deletedAt" timestamptz(3),
  "stateSeenAt" timestamptz(3), "data" jsonb, "via" text
) ON COMMIT DELETE ROWS`;
const PG_COPY = `COPY ${PG_STAGE} (${COLS.map((c) => `"${c}"`).join(', ')}) FROM STDIN`;

/** The merge of rows into Submission, newest wins: `from` is what follows FROM (the stage, by default). */
function pgMerge(from: string): string {
  const newerCols = ['version', 'replaces', 'updatedAt', 'submittedAt', 'data', 'via'];
  const flipCols = ['deleted', 'deletedAt', 'stateSeenAt'];
  // Each condition is evaluated once per row (a sub-select), not once per column: OFFSET 0 keeps
  // the planner from inlining it into every column's CASE, which made six copies of PG_NEWER
  // (each with its SupersededVersion look-ups) and cost 1.6 ms more to parse and plan per batch.
  return `INSERT INTO "Submission" AS s (${[...COLS, 'loadedAt'].map((c) => `"${c}"`).join(', ')})
SELECT ${COLS.map((c) => `"${c}"`).join(', ')}, now() FROM ${from}
ON CONFLICT ("sourceId", "formId", "key") DO UPDATE SET
  (${[...newerCols, ...flipCols, 'loadedAt'].map((c) => `"${c}"`).join(', ')}) = (SELECT
${[
  ...newerCols.map((c) => `    CASE WHEN c.newer THEN EXCLUDED."${c}" ELSE s."${c}" END`),
  ...flipCols.map((c) => `    CASE WHEN c.flip THEN EXCLUDED."${c}" ELSE s."${c}" END`),
  `    now()`,
].join(',\n')}
  FROM (SELECT ${PG_NEWER} AS newer, ${PG_FLIP} AS flip OFFSET 0) c)
WHERE ${PG_NEWER} OR ${PG_FLIP}
RETURNING "sourceId", "formId", "key", (xmax = 0) AS "inserted"`;
}
const PG_MERGE = pgMerge(PG_STAGE);

/** A record as a COPY line of the stage, in COLS order. */
function pgStageLine(s: CanonicalSubmission): string {
  return copyLine([
    s.sourceId, s.formId, s.key, s.version, s.replaces ?? null, s.updatedAt, s.submittedAt, s.deleted,
    s.deleted ? (s.deletedAt ?? s.observedAt) : null, s.observedAt, JSON.stringify(s.data), s.via,
  ]);
}

/*
 * MySQL evaluates ON DUPLICATE KEY UPDATE assignments left to right, each seeing the
 * columns already assigned, so both conditions are computed once, first, into session
 * variables, and every later assignment reads them.
 */
/*
 * "Known superseded" on MySQL is read before the statement (a plain, non-locking
 * read of SupersededVersion for the chunk's keys) and passed in as a list: a
 * sub-select inside ON DUPLICATE KEY UPDATE is a locking read under REPEATABLE
 * READ, and its shared locks deadlocked concurrent loaders.
 */
const myKnown = (pairs: number, cols: string) =>
  pairs === 0 ? 'FALSE' : `(${cols}) IN (${Array(pairs).fill('(?, ?, ?, ?)').join(', ')})`;
const myNewer = (pairs: number) => `(CASE WHEN VALUES(\`version\`) = \`version\` THEN
    NOT (VALUES(\`via\`) = 'webhook' AND \`via\` <> 'webhook')
    AND ((\`via\` = 'webhook' AND VALUES(\`via\`) <> 'webhook' AND NOT VALUES(\`deleted\`)) OR VALUES(\`updatedAt\`) > \`updatedAt\`)
    AND VALUES(\`data\`) <> \`data\`
  WHEN VALUES(\`replaces\`) <=> \`version\` THEN TRUE
  WHEN \`replaces\` <=> VALUES(\`version\`) THEN FALSE
  WHEN (@fs_i := ${myKnown(pairs, 'VALUES(`sourceId`), VALUES(`formId`), VALUES(`key`), VALUES(`version`)')}) <> (@fs_s := ${myKnown(pairs, '`sourceId`, `formId`, `key`, `version`')}) THEN @fs_s
  WHEN (VALUES(\`replaces\`) IS NULL) <> (\`replaces\` IS NULL) THEN VALUES(\`replaces\`) IS NOT NULL
  WHEN (VALUES(\`via\`) = 'webhook') <> (\`via\` = 'webhook') THEN VALUES(\`via\`) <> 'webhook'
  ELSE (VALUES(\`updatedAt\`), VALUES(\`version\`)) > (\`updatedAt\`, \`version\`) END)`;
const MY_FLIP = `(VALUES(\`deleted\`) <> \`deleted\` AND VALUES(\`stateSeenAt\`) >= \`stateSeenAt\`)`;

function mysqlUpsert(rows: number, pairs: number): string {
  const tuple = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, CURRENT_TIMESTAMP(3))`;
  const newerCols = ['data', 'submittedAt', 'via', 'replaces', 'version', 'updatedAt'];
  const flipCols = ['deletedAt', 'stateSeenAt', 'deleted'];
  return `INSERT INTO \`Submission\` (${[...COLS, 'loadedAt'].map((c) => `\`${c}\``).join(', ')})
VALUES ${Array(rows).fill(tuple).join(', ')}
ON DUPLICATE KEY UPDATE
  \`loadedAt\` = IF((@fs_newer := ${myNewer(pairs)}) + (@fs_flip := ${MY_FLIP}) > 0, VALUES(\`loadedAt\`), \`loadedAt\`),
${[
  ...newerCols.map((c) => `  \`${c}\` = IF(@fs_newer, VALUES(\`${c}\`), \`${c}\`)`),
  ...flipCols.map((c) => `  \`${c}\` = IF(@fs_flip, VALUES(\`${c}\`), \`${c}\`)`),
].join(',\n')}`;
}

/** Keys per read of stored rows (one IN list). */
const KNOWN_CHUNK = 1000;

/** Calls `read` once per form of `rows` and per {@link KNOWN_CHUNK} of its distinct keys. */
async function perFormKeys(rows: readonly CanonicalSubmission[], read: (sourceId: string, formId: string, keys: string[]) => Promise<void>): Promise<void> {
  const forms = new Map<string, { sourceId: string; formId: string; keys: Set<string> }>();
  for (const s of rows) {
    const id = `${s.sourceId}\u0000${s.formId}`;
    const f = forms.get(id) ?? { sourceId: s.sourceId, formId: s.formId, keys: new Set<string>() };
    f.keys.add(s.key);
    forms.set(id, f);
  }
  for (const f of forms.values()) {
    const keys = [...f.keys];
    for (let i = 0; i < keys.length; i += KNOWN_CHUNK) await read(f.sourceId, f.formId, keys.slice(i, i + KNOWN_CHUNK));
  }
}

const inList = (keys: readonly string[]) => `IN (${keys.map(() => '?').join(', ')})`;

/**
 * The versions known superseded for these rows' keys (recordId → versions): a
 * plain, non-locking read, after the batch's own `replaces` were recorded.
 */
async function knownSuperseded(db: Database, sql: Sql, rows: CanonicalSubmission[]): Promise<Map<string, Set<string>>> {
  const q = (c: string) => quoteIdent(db.dialect, c);
  const out = new Map<string, Set<string>>();
  await perFormKeys(rows, async (sourceId, formId, keys) => {
    const found = await sql.query<{ key: string; version: string }>(
      `SELECT ${q('key')}, ${q('version')} FROM ${q('SupersededVersion')} WHERE ${q('sourceId')} = ? AND ${q('formId')} = ? AND ${q('key')} ${inList(keys)}`,
      [sourceId, formId, ...keys],
    );
    for (const r of found) {
      const id = recordId({ sourceId, formId, key: r.key });
      const set = out.get(id) ?? new Set<string>();
      set.add(r.version);
      out.set(id, set);
    }
  });
  return out;
}

/** Rows per SupersededVersion INSERT (4 parameters each). */
const SUPERSEDED_CHUNK = 2000;

/**
 * Records every `replaces` of the batch as superseded, sorted (concurrent loaders
 * take the same locks in the same order), before the upsert reads them.
 */
async function recordSuperseded(db: Database, batch: CanonicalSubmission[], sql: Sql): Promise<void> {
  const seen = new Set<string>();
  const rows: [string, string, string, string][] = [];
  for (const s of batch) {
    if (!s.replaces) continue;
    const id = `${s.sourceId}\u0000${s.formId}\u0000${s.key}\u0000${s.replaces}`;
    if (seen.has(id)) continue;
    seen.add(id);
    rows.push([s.sourceId, s.formId, s.key, s.replaces]);
  }
  const lt = (a: string[], b: string[]) => { for (let i = 0; i < 4; i++) if (a[i] !== b[i]) return a[i]! < b[i]! ? -1 : 1; return 0; };
  rows.sort(lt);
  for (let i = 0; i < rows.length; i += SUPERSEDED_CHUNK) {
    const chunk = rows.slice(i, i + SUPERSEDED_CHUNK);
    const values = Array(chunk.length).fill('(?, ?, ?, ?)').join(', ');
    const text =
      db.dialect === 'postgresql'
        ? `INSERT INTO "SupersededVersion" ("sourceId", "formId", "key", "version") VALUES ${values} ON CONFLICT DO NOTHING`
        : `INSERT INTO \`SupersededVersion\` (\`sourceId\`, \`formId\`, \`key\`, \`version\`) VALUES ${values} ON DUPLICATE KEY UPDATE \`version\` = \`version\``;
    await sql.execute(text, chunk.flat());
  }
}

/** MySQL DATETIME(3) literal in UTC. */
export function mysqlTime(iso: string): string {
  return new Date(iso).toISOString().replace('T', ' ').replace('Z', '');
}

/** A row ready to send: the record and its JSON, serialized once. */
interface Encoded {
  s: CanonicalSubmission;
  json: string;
}

function mysqlParams(batch: Encoded[]): unknown[] {
  const t = mysqlTime;
  const out: unknown[] = [];
  for (const { s, json } of batch) {
    out.push(
      s.sourceId, s.formId, s.key, s.version, s.replaces ?? null,
      t(s.updatedAt), t(s.submittedAt),
      s.deleted,
      s.deleted ? t(s.deletedAt ?? s.observedAt) : null,
      t(s.observedAt),
      json,
      s.via,
    );
  }
  return out;
}

export interface UpsertResult {
  /**
   * PostgreSQL: the copies this call inserted as new rows (xmax = 0), so the stored row
   * is exactly that copy — the typed tables type them from memory instead of reading
   * them back. null on MySQL (no RETURNING): callers read the rows back.
   */
  inserted: CanonicalSubmission[] | null;
  /**
   * The records (recordId) whose row this call may have inserted or changed; a key not
   * in it was a no-op re-delivery, so nothing derived from its row needs rewriting.
   * PostgreSQL: exactly those (RETURNING). MySQL: those whose stored row was not already
   * the very copy sent (its affected-rows count does not say which), a superset.
   */
  written: Set<string>;
}

/**
 * Writes a batch with newest-wins semantics, after one statement per 2,000 `replaces`:
 * on PostgreSQL a COPY into a staging table and one merge; on MySQL one multi-row
 * statement per {@link UPSERT_CHUNK} rows. All in the caller's transaction if it
 * passes one — pass one: the lineage must commit with the rows.
 */
export async function upsertSubmissions(db: Database, batch: CanonicalSubmission[], sql: Sql = db.sql): Promise<UpsertResult> {
  // PostgreSQL stages the batch in a temporary table, which needs a transaction: one of our own when the caller has none.
  if (db.dialect === 'postgresql' && !sql.copyIn) return db.transaction((tx) => upsertSubmissions(db, batch, tx));
  await recordSuperseded(db, batch, sql);
  // Read where a key has several copies to choose from, and on MySQL where lineage can
  // decide (PostgreSQL's statement reads it itself); ODK and first loads skip the read.
  const needed = new Set(batch.map(recordId)).size < batch.length || (db.dialect === 'mysql' && batch.some((s) => s.replaces));
  const known = needed ? await knownSuperseded(db, sql, batch) : new Map<string, Set<string>>();
  const rows = newestPerKey(batch, known);
  if (db.dialect === 'postgresql') return pgWrite(sql, rows);
  const fresh = await withoutStoredCopies(sql, rows.map((s) => ({ s, json: JSON.stringify(s.data) })));
  let chunk: Encoded[] = [];
  let bytes = 0;
  const flush = async () => {
    if (chunk.length === 0) return;
    await mysqlChunk(sql, chunk, known);
    chunk = [];
    bytes = 0;
  };
  for (const e of fresh) {
    if (chunk.length >= UPSERT_CHUNK || (chunk.length > 0 && bytes + e.json.length > UPSERT_MAX_BYTES)) await flush();
    chunk.push(e);
    bytes += e.json.length;
  }
  await flush();
  return { inserted: null, written: new Set(fresh.map((e) => recordId(e.s))) };
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/**
 * MySQL: the rows whose stored row is not already this very copy. A copy of the stored
 * version with the same deletion state and the same JSON text is a no-op for the merge
 * (the same version wins only with other data; a flip needs another deletion state), so
 * it is dropped before the upsert: ON DUPLICATE KEY UPDATE on an unchanged row still
 * cost MariaDB ~150 µs of CPU a row (half of it later, as purge), this read ~10 µs.
 * MariaDB keeps JSON as the text sent (utf8mb4), so equal SHA-256 means equal text;
 * MySQL 8 stores JSON binary, its text differs and nothing is dropped there. A plain,
 * non-locking read: a copy equal to the stored row stays a no-op in any serial order.
 */
async function withoutStoredCopies(sql: Sql, rows: Encoded[]): Promise<Encoded[]> {
  const stored = new Map<string, { version: string; deleted: boolean; sha: string }>();
  await perFormKeys(rows.map((e) => e.s), async (sourceId, formId, keys) => {
    const found = await sql.query<{ key: string; version: string; deleted: number | boolean; sha: string }>(
      `SELECT \`key\`, \`version\`, \`deleted\`, SHA2(\`data\`, 256) AS sha FROM \`Submission\` WHERE \`sourceId\` = ? AND \`formId\` = ? AND \`key\` ${inList(keys)}`,
      [sourceId, formId, ...keys],
    );
    for (const r of found) stored.set(recordId({ sourceId, formId, key: r.key }), { version: r.version, deleted: Boolean(r.deleted), sha: r.sha });
  });
  if (stored.size === 0) return rows;
  return rows.filter(({ s, json }) => {
    const r = stored.get(recordId(s));
    // Version and deletion state first: the hash is computed only for a copy of the stored version.
    return !(r && r.version === s.version && r.deleted === s.deleted && r.sha === sha256(json));
  });
}

/** PostgreSQL: staged by COPY and merged in one statement (the caller's transaction). */
async function pgWrite(sql: Sql, rows: CanonicalSubmission[]): Promise<UpsertResult> {
  if (rows.length === 0) return { inserted: [], written: new Set() };
  await sql.execute(PG_STAGE_DDL);
  await sql.copyIn!(PG_COPY, rows.map(pgStageLine));
  // RETURNING lists the rows inserted or updated; rows the WHERE kept as they were are absent.
  const written = await sql.query<{ sourceId: string; formId: string; key: string; inserted: boolean }>(PG_MERGE);
  // ON COMMIT empties the stage; a later upsert in the same transaction must not merge these again.
  await sql.execute(`DELETE FROM ${PG_STAGE}`);
  const sent = new Map(rows.map((s) => [recordId(s), s]));
  return { inserted: written.filter((w) => w.inserted).map((w) => sent.get(recordId(w))!), written: new Set(written.map(recordId)) };
}

/*
 * An ingest batch upserted from its job's JSON text ({"submissions": [...], "runId"?}),
 * which PostgreSQL parses itself, in one statement. Each field is checked at least as
 * strictly as the job's zod schema (CanonicalSubmission): a value that fails a check
 * becomes NULL in a NOT NULL column of Submission, so the statement fails and the
 * caller takes the parsed path, whose schema names what is wrong. Lengths count UTF-8
 * bytes, not UTF-16 units, which is never more lenient; times must be exactly
 * toISOString's form (what every producer writes); anything else takes the parsed
 * path too. These checks restate the schema's rules: a rule added there needs its case in
 * packages/sync/src/ingest-json.test.ts, which holds the two together.
 */
/** Each record's fields as jsonb (SQL NULL when absent or null), read in one pass by jsonb_to_record. */
const PG_JSON_FIELDS = [...COLS.filter((c) => c !== 'stateSeenAt'), 'observedAt'].map((c) => `"${c}" jsonb`).join(', ');
const jf = (f: string) => `x."${f}"`;
const jt = (f: string) => `(x."${f}" #>> '{}')`;
const isStr = (f: string, max: number) => `(jsonb_typeof(${jf(f)}) = 'string' AND octet_length(${jt(f)}) BETWEEN 1 AND ${max})`;
const isTime = (f: string) => `(jsonb_typeof(${jf(f)}) = 'string' AND ${jt(f)} LIKE '____-__-__T__:__:__.___Z')`;
const time = (f: string) => `CASE WHEN ${isTime(f)} THEN ${jt(f)}::timestamptz END`;
const str = (f: string, max: number) => `CASE WHEN ${isStr(f, max)} THEN ${jt(f)} END`;
/**
 * The optional fields' checks ride on `deleted` (NOT NULL): false when absent, as zod's
 * default, but a JSON null is refused as zod refuses it (jsonb_to_record reads both as
 * NULL, so the record itself says which). A version said to replace itself goes the
 * parsed path (see PG_JSON_UPSERT).
 */
const PG_JSON_DELETED = `CASE WHEN (${jf('replaces')} IS NULL OR (${isStr('replaces', 191)} AND ${jt('replaces')} <> ${jt('version')}))
    AND (${jf('deletedAt')} IS NULL OR ${isTime('deletedAt')}) AND e->'deleted' IS DISTINCT FROM 'null'::jsonb
    THEN CASE WHEN ${jf('deleted')} IS NULL THEN false WHEN jsonb_typeof(${jf('deleted')}) = 'boolean' THEN ${jf('deleted')}::boolean END END`;
/** The job's own fields, as IngestBatch's schema reads them; storedKeys (a narrowed retry) takes the parsed path. */
const PG_JSON_JOB_OK = `jsonb_typeof(b.j) = 'object' AND b.j->'storedKeys' IS NULL
  AND (b.j->'runId' IS NULL OR (jsonb_typeof(b.j->'runId') = 'string' AND b.j->>'runId' ~ '^[0-9]+$'))`;
const PG_JSON_ROWS = [
  str('sourceId', 64), str('formId', 191), str('key', 191), str('version', 191),
  `CASE WHEN ${isStr('replaces', 191)} THEN ${jt('replaces')} END`, time('updatedAt'), time('submittedAt'), PG_JSON_DELETED,
  `CASE WHEN ${jf('deleted')} = 'true'::jsonb THEN coalesce(${time('deletedAt')}, ${time('observedAt')}) END`, time('observedAt'),
  `CASE WHEN jsonb_typeof(${jf('data')}) = 'object' THEN ${jf('data')} END`,
  `CASE WHEN jsonb_typeof(${jf('via')}) = 'string' AND ${jt('via')} IN (${Via.options.map((v) => `'${v}'`).join(', ')}) THEN ${jt('via')} END`,
].map((expr, i) => `${expr} AS "${COLS[i]}"`);
/** The order newestPerKey gives the parsed path: concurrent loaders lock rows in one order. */
const BY_KEY = `"sourceId" COLLATE "C", "formId" COLLATE "C", "key" COLLATE "C"`;
/*
 * One statement: the records (src), recorded lineage, the merge, and the counts.
 * The merge runs on the statement's snapshot, so it does not see the lineage this
 * statement records. With one copy per key that never matters: a row's own
 * `replaces` decides by the direct link (PG_NEWER's second branch), and only other
 * copies of its key could mark it or the stored version superseded. So a batch with
 * two copies of a key (newest-wins between them is upsertSubmissions' work) changes
 * nothing and says so (dup), and so does a version said to replace itself (above).
 */
const PG_JSON_UPSERT = `WITH src AS MATERIALIZED (
  SELECT ${PG_JSON_ROWS.join(',\n    ')}
  FROM (SELECT ?::jsonb AS j) b, jsonb_array_elements(CASE WHEN ${PG_JSON_JOB_OK} THEN b.j->'submissions' END) e, jsonb_to_record(e) AS x(${PG_JSON_FIELDS})
),
dup AS (SELECT count(*) <> count(DISTINCT ("sourceId", "formId", "key")) AS d FROM src),
lineage AS (
  INSERT INTO "SupersededVersion" ("sourceId", "formId", "key", "version")
  SELECT * FROM (SELECT DISTINCT "sourceId", "formId", "key", "replaces" FROM src WHERE "replaces" IS NOT NULL AND NOT (SELECT d FROM dup)) r
  ORDER BY ${BY_KEY}, "replaces" COLLATE "C"
  ON CONFLICT DO NOTHING
),
merged AS (${pgMerge(`src WHERE NOT (SELECT d FROM dup) ORDER BY ${BY_KEY}`)})
SELECT "sourceId", "formId", "via", count(*)::int AS "n", bool_or((SELECT d FROM dup)) AS "dup" FROM src GROUP BY 1, 2, 3`;

/** Records of one source, form and origin that a JSON batch stored. */
export interface JsonBatchCount {
  sourceId: string;
  formId: string;
  via: Via;
  n: number;
}

/** A JSON batch with two copies of one key: it changed nothing; the parsed path picks the newest copy. */
export class DuplicateKeysError extends Error {
  override name = 'DuplicateKeysError';
  constructor() {
    super('the batch holds two copies of one record; newest-wins between them needs the parsed path');
  }
}

/**
 * PostgreSQL only, in one statement (atomic without a transaction): upserts an ingest
 * job's records from the job's JSON text, with exactly the newest-wins merge of
 * {@link upsertSubmissions}, without parsing the records in JavaScript. Returns the
 * records stored per source/form/origin, or null when the job is not one this path
 * takes (no records, a narrowed retry). Throws, having changed nothing, when a record
 * fails its checks or the database refuses one, and (DuplicateKeysError) when two
 * records share a key: the caller then takes the parsed path, which picks the newest
 * copy, isolates a refused record and names what is wrong.
 */
export async function upsertSubmissionsJson(sql: Sql, json: string): Promise<JsonBatchCount[] | null> {
  const counts = await sql.query<JsonBatchCount & { dup: boolean }>(PG_JSON_UPSERT, [json]);
  if (counts.length === 0) return null;
  if (counts[0]!.dup) throw new DuplicateKeysError();
  return counts.map(({ sourceId, formId, via, n }) => ({ sourceId, formId, via, n }));
}

/** Placeholders a MySQL prepared statement may hold (65,535), with room to spare. */
const MYSQL_MAX_PARAMS = 60_000;

async function mysqlChunk(sql: Sql, chunk: Encoded[], superseded: Map<string, Set<string>>): Promise<void> {
  // The version a row replaces is left out: if it is the stored one, the direct link decides first.
  const known = chunk.flatMap(({ s }) => [...(superseded.get(recordId(s)) ?? [])].filter((v) => v !== s.replaces).map((v) => [s.sourceId, s.formId, s.key, v] as const));
  // Each pair appears twice (incoming, stored), after the rows' parameters; long lineages cut the chunk.
  if (chunk.length > 1 && chunk.length * COLS.length + known.length * 8 > MYSQL_MAX_PARAMS) {
    const mid = Math.ceil(chunk.length / 2);
    await mysqlChunk(sql, chunk.slice(0, mid), superseded);
    await mysqlChunk(sql, chunk.slice(mid), superseded);
    return;
  }
  await sql.execute(mysqlUpsert(chunk.length, known.length), [...mysqlParams(chunk), ...known.flat(), ...known.flat()]);
}
