import { newestPerKey, type CanonicalSubmission } from '@fieldsync/model';
import type { Database, Sql } from './database.ts';
import type { Dialect } from './dialect.ts';

/** Rows per INSERT statement: well under PostgreSQL's 65,535 parameters. */
export const UPSERT_CHUNK = 1000;
/**
 * JSON bytes per INSERT statement: MySQL refuses a statement larger than
 * max_allowed_packet (16 MiB by default on MariaDB), and forms with big repeats
 * can reach tens of kB per record.
 */
export const UPSERT_MAX_BYTES = 4 * 1024 * 1024;

const COLS = ['sourceId', 'formId', 'key', 'version', 'updatedAt', 'submittedAt', 'deleted', 'deletedAt', 'stateSeenAt', 'data', 'via'] as const;

/*
 * Newest wins, in SQL, per row:
 *  newer — the incoming version is later by (updatedAt, version) and actually differs
 *          (another version, or the same version with changed data, e.g. an ODK review);
 *          or it is the same version read from the source's API where the stored copy
 *          came from a webhook (a REST Service field subset, attachments not yet saved):
 *          the API's copy is the complete one;
 *  flip  — the deletion state differs and was observed no earlier than the stored one.
 * A re-delivery of the stored version matches neither and leaves the row untouched.
 */
const PG_NEWER = `(((EXCLUDED."updatedAt", EXCLUDED."version") > (s."updatedAt", s."version") AND (EXCLUDED."version" <> s."version" OR EXCLUDED."data" IS DISTINCT FROM s."data"))
  OR ((EXCLUDED."updatedAt", EXCLUDED."version") = (s."updatedAt", s."version") AND s."via" = 'webhook' AND EXCLUDED."via" <> 'webhook' AND NOT EXCLUDED."deleted" AND EXCLUDED."data" IS DISTINCT FROM s."data"))`;
const PG_FLIP = `(EXCLUDED."deleted" <> s."deleted" AND EXCLUDED."stateSeenAt" >= s."stateSeenAt")`;

function pgUpsert(rows: number): string {
  const tuple = `(?, ?, ?, ?, ?::timestamptz, ?::timestamptz, ?, ?::timestamptz, ?::timestamptz, ?::jsonb, ?, now())`;
  const newerCols = ['version', 'updatedAt', 'submittedAt', 'data', 'via'];
  const flipCols = ['deleted', 'deletedAt', 'stateSeenAt'];
  return `INSERT INTO "Submission" AS s (${[...COLS, 'loadedAt'].map((c) => `"${c}"`).join(', ')})
VALUES ${Array(rows).fill(tuple).join(', ')}
ON CONFLICT ("sourceId", "formId", "key") DO UPDATE SET
${[
  ...newerCols.map((c) => `  "${c}" = CASE WHEN ${PG_NEWER} THEN EXCLUDED."${c}" ELSE s."${c}" END`),
  ...flipCols.map((c) => `  "${c}" = CASE WHEN ${PG_FLIP} THEN EXCLUDED."${c}" ELSE s."${c}" END`),
  `  "loadedAt" = now()`,
].join(',\n')}
WHERE ${PG_NEWER} OR ${PG_FLIP}`;
}

/*
 * MySQL evaluates ON DUPLICATE KEY UPDATE assignments left to right, each seeing the
 * columns already assigned, so both conditions are computed once, first, into session
 * variables, and every later assignment reads them.
 */
const MY_NEWER = `(((VALUES(\`updatedAt\`), VALUES(\`version\`)) > (\`updatedAt\`, \`version\`) AND (VALUES(\`version\`) <> \`version\` OR VALUES(\`data\`) <> \`data\`))
  OR ((VALUES(\`updatedAt\`), VALUES(\`version\`)) = (\`updatedAt\`, \`version\`) AND \`via\` = 'webhook' AND VALUES(\`via\`) <> 'webhook' AND NOT VALUES(\`deleted\`) AND VALUES(\`data\`) <> \`data\`))`;
const MY_FLIP = `(VALUES(\`deleted\`) <> \`deleted\` AND VALUES(\`stateSeenAt\`) >= \`stateSeenAt\`)`;

function mysqlUpsert(rows: number): string {
  const tuple = `(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, CURRENT_TIMESTAMP(3))`;
  const newerCols = ['data', 'submittedAt', 'via', 'version', 'updatedAt'];
  const flipCols = ['deletedAt', 'stateSeenAt', 'deleted'];
  return `INSERT INTO \`Submission\` (${[...COLS, 'loadedAt'].map((c) => `\`${c}\``).join(', ')})
VALUES ${Array(rows).fill(tuple).join(', ')}
ON DUPLICATE KEY UPDATE
  \`loadedAt\` = IF((@fs_newer := ${MY_NEWER}) + (@fs_flip := ${MY_FLIP}) > 0, VALUES(\`loadedAt\`), \`loadedAt\`),
${[
  ...newerCols.map((c) => `  \`${c}\` = IF(@fs_newer, VALUES(\`${c}\`), \`${c}\`)`),
  ...flipCols.map((c) => `  \`${c}\` = IF(@fs_flip, VALUES(\`${c}\`), \`${c}\`)`),
].join(',\n')}`;
}

/** MySQL DATETIME(3) literal in UTC. */
function mysqlTime(iso: string): string {
  return new Date(iso).toISOString().replace('T', ' ').replace('Z', '');
}

/** A row ready to send: the record and its JSON, serialized once. */
interface Encoded {
  s: CanonicalSubmission;
  json: string;
}

function params(dialect: Dialect, batch: Encoded[]): unknown[] {
  const t = dialect === 'postgresql' ? (iso: string) => iso : mysqlTime;
  const out: unknown[] = [];
  for (const { s, json } of batch) {
    out.push(
      s.sourceId, s.formId, s.key, s.version,
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

/**
 * Writes a batch with newest-wins semantics: one multi-row statement per
 * {@link UPSERT_CHUNK} rows, all in the caller's transaction if it passes one.
 */
export async function upsertSubmissions(db: Database, batch: CanonicalSubmission[], sql: Sql = db.sql): Promise<void> {
  const rows = newestPerKey(batch);
  let chunk: Encoded[] = [];
  let bytes = 0;
  const flush = async () => {
    if (chunk.length === 0) return;
    const text = db.dialect === 'postgresql' ? pgUpsert(chunk.length) : mysqlUpsert(chunk.length);
    await sql.execute(text, params(db.dialect, chunk));
    chunk = [];
    bytes = 0;
  };
  for (const s of rows) {
    const json = JSON.stringify(s.data);
    if (chunk.length >= UPSERT_CHUNK || (chunk.length > 0 && bytes + json.length > UPSERT_MAX_BYTES)) await flush();
    chunk.push({ s, json });
    bytes += json.length;
  }
  await flush();
}

export interface StoredVersion {
  key: string;
  version: string;
  updatedAt: Date;
  submittedAt: Date;
  deleted: boolean;
  /** The value at the requested path of the stored `data`, as text (null when absent). */
  probe?: string | null;
}

const PROBE_KEY = /^[A-Za-z0-9_./:-]{1,64}$/;

/**
 * What we hold for a form, for sweeps. `probe` names a path into the stored
 * JSON (e.g. `['_validation_status', 'uid']`) whose value a connector compares
 * with the source's, for changes that keep the version (Kobo validation status).
 */
export async function storedVersions(db: Database, sourceId: string, formId: string, opts: { probe?: string[] } = {}): Promise<Map<string, StoredVersion>> {
  const path = opts.probe;
  if (path && (path.length === 0 || !path.every((k) => PROBE_KEY.test(k)))) throw new Error(`invalid probe path ${JSON.stringify(path)}`);
  // The path travels as a parameter, never as SQL text.
  const rows =
    db.dialect === 'postgresql'
      ? await db.sql.query<StoredRow>(
          `SELECT "key", "version", "updatedAt", "submittedAt", "deleted", ${path ? `"data" #>> ?::text[]` : 'NULL'} AS probe FROM "Submission" WHERE "sourceId" = ? AND "formId" = ?`,
          path ? [path, sourceId, formId] : [sourceId, formId],
        )
      : await db.sql.query<StoredRow>(
          `SELECT \`key\`, \`version\`, \`updatedAt\`, \`submittedAt\`, \`deleted\`, ${path ? 'JSON_UNQUOTE(JSON_EXTRACT(`data`, ?))' : 'NULL'} AS probe FROM \`Submission\` WHERE \`sourceId\` = ? AND \`formId\` = ?`,
          path ? ['$' + path.map((k) => `."${k}"`).join(''), sourceId, formId] : [sourceId, formId],
        );
  // MySQL DATETIME may come back as text; it is UTC either way.
  const utc = (v: Date | string) => (v instanceof Date ? v : new Date(`${v.replace(' ', 'T')}Z`));
  return new Map(
    rows.map((r) => [
      r.key,
      {
        key: r.key, version: r.version, updatedAt: utc(r.updatedAt), submittedAt: utc(r.submittedAt), deleted: Boolean(r.deleted),
        ...(path ? { probe: r.probe === 'null' ? null : r.probe } : {}),
      },
    ]),
  );
}

interface StoredRow {
  key: string;
  version: string;
  updatedAt: Date | string;
  submittedAt: Date | string;
  deleted: boolean | number;
  probe: string | null;
}
