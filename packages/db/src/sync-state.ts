import type { Database } from './database.ts';
import { quoteIdent } from './dialect.ts';
import { mysqlTime } from './submissions.ts';

export type Cursor = Record<string, unknown>;

/*
 * The poll path's bookkeeping (cursor, run rows, stale runs, the auth streak, typed-table counts) is plain SQL: each Prisma call cost the
 * poller 2-3 ms of CPU warm and 20-40 ms the first time a process ran its shape (its
 * query compiler), against 0.3 ms for the statement itself; a poll makes several.
 */
const isPg = (db: Database) => db.dialect === 'postgresql';
const c = (db: Database, name: string) => quoteIdent(db.dialect, name);
/** A time parameter as each database's column wants it. */
const at = (db: Database, d: Date) => (isPg(db) ? d.toISOString() : mysqlTime(d.toISOString()));
const ts = (db: Database) => (isPg(db) ? '?::timestamptz' : '?');
const js = (db: Database) => (isPg(db) ? '?::jsonb' : '?');
/** A time column as read: a Date, or (some MySQL paths) DATETIME text in UTC. */
const timeOf = (v: Date | string): Date => (v instanceof Date ? v : new Date(`${v.replace(' ', 'T')}Z`));

export async function loadCursor(db: Database, sourceId: string, formId: string): Promise<Cursor | null> {
  const rows = await db.sql.query<{ cursor: unknown }>(
    `SELECT ${c(db, 'cursor')} FROM ${c(db, 'SyncState')} WHERE ${c(db, 'sourceId')} = ? AND ${c(db, 'formId')} = ?`,
    [sourceId, formId],
  );
  const v = rows[0]?.cursor ?? null;
  // MySQL answers JSON as text (MariaDB's JSON is LONGTEXT).
  return (typeof v === 'string' ? JSON.parse(v) : v) as Cursor | null;
}

/** Stores the cursor (once per page of a poll); callers do this only after the batches it covers are enqueued. */
export async function saveCursor(db: Database, sourceId: string, formId: string, cursor: Cursor): Promise<void> {
  const json = JSON.stringify(cursor);
  const now = at(db, new Date());
  if (isPg(db)) {
    await db.sql.execute(
      `INSERT INTO "SyncState" ("sourceId", "formId", "cursor", "lastRunAt", "updatedAt") VALUES (?, ?, ?::jsonb, ?::timestamptz, ?::timestamptz)
       ON CONFLICT ("sourceId", "formId") DO UPDATE SET "cursor" = EXCLUDED."cursor", "lastRunAt" = EXCLUDED."lastRunAt", "updatedAt" = EXCLUDED."updatedAt"`,
      [sourceId, formId, json, now, now],
    );
    return;
  }
  await db.sql.execute(
    'INSERT INTO `SyncState` (`sourceId`, `formId`, `cursor`, `lastRunAt`, `updatedAt`) VALUES (?, ?, ?, ?, ?) ' +
      'ON DUPLICATE KEY UPDATE `cursor` = VALUES(`cursor`), `lastRunAt` = VALUES(`lastRunAt`), `updatedAt` = VALUES(`updatedAt`)',
    [sourceId, formId, json, now, now],
  );
}

/** Forgets the cursor so the next poll starts from the beginning (backfill). */
export async function resetCursor(db: Database, sourceId: string, formId: string): Promise<void> {
  await db.sql.execute(`DELETE FROM ${c(db, 'SyncState')} WHERE ${c(db, 'sourceId')} = ? AND ${c(db, 'formId')} = ?`, [sourceId, formId]);
}

export type RunMode = 'poll' | 'sweep' | 'backfill' | 'discover';
/** `interrupted`: its process died (or lost the database) before finishing; `auth_failed`: the source refused our credentials. */
export type RunOutcome = 'running' | 'ok' | 'failed' | 'skipped' | 'interrupted' | 'auth_failed';

/** A 'running' run whose heartbeat is older than this was left by a process that is gone. */
export const RUN_STALE_AFTER_MS = 120_000;

export async function startRun(db: Database, sourceId: string, formId: string, mode: RunMode, cursorFrom: Cursor | null): Promise<bigint> {
  const now = at(db, new Date());
  const insert = `INSERT INTO ${c(db, 'SyncRun')} (${['sourceId', 'formId', 'mode', 'startedAt', 'heartbeatAt', 'outcome', 'cursorFrom'].map((k) => c(db, k)).join(', ')})
VALUES (?, ?, ?, ${ts(db)}, ${ts(db)}, 'running', ${js(db)})`;
  const params = [sourceId, formId, mode, now, now, cursorFrom === null ? null : JSON.stringify(cursorFrom)];
  if (isPg(db)) return BigInt((await db.sql.query<{ id: string }>(`${insert} RETURNING "id"`, params))[0]!.id);
  // LAST_INSERT_ID() is per connection: the same one as the INSERT.
  return db.transaction(async (sql) => {
    await sql.execute(insert, params);
    return BigInt((await sql.query<{ id: number | string }>('SELECT LAST_INSERT_ID() AS id'))[0]!.id);
  });
}

/** The counts so far, and proof of life (throttled by the caller: not per record). */
export async function progressRun(db: Database, id: bigint, p: { fetched: number; enqueued: number }): Promise<void> {
  await db.sql.execute(
    `UPDATE ${c(db, 'SyncRun')} SET ${c(db, 'fetched')} = ?, ${c(db, 'enqueued')} = ?, ${c(db, 'heartbeatAt')} = ${ts(db)} WHERE ${c(db, 'id')} = ?`,
    [p.fetched, p.enqueued, at(db, new Date()), String(id)],
  );
}

/**
 * Closes runs left 'running' by a dead process (killed, or cut off from the database
 * before it could write its end) as 'interrupted', keeping their last counts.
 * Only runs silent for `staleAfterMs`: a live run elsewhere (another replica, a CLI
 * backfill) keeps its heartbeat fresh and is left alone. Without `formId`, every form
 * (`sourceId` too: every source) — what a poller does at start-up.
 */
export async function closeStaleRuns(
  db: Database,
  where: { sourceId?: string; formId?: string; staleAfterMs?: number } = {},
): Promise<{ id: bigint; sourceId: string; formId: string; mode: string }[]> {
  const cutoff = at(db, new Date(Date.now() - (where.staleAfterMs ?? RUN_STALE_AFTER_MS)));
  const scope = [where.sourceId === undefined ? '' : ` AND ${c(db, 'sourceId')} = ?`, where.formId === undefined ? '' : ` AND ${c(db, 'formId')} = ?`].join('');
  const stale = await db.sql.query<{ id: string | number; sourceId: string; formId: string; mode: string; startedAt: Date | string; heartbeatAt: Date | string | null }>(
    `SELECT ${['id', 'sourceId', 'formId', 'mode', 'startedAt', 'heartbeatAt'].map((k) => c(db, k)).join(', ')} FROM ${c(db, 'SyncRun')}
WHERE ${c(db, 'outcome')} = 'running'${scope}
  AND (${c(db, 'heartbeatAt')} < ${ts(db)} OR (${c(db, 'heartbeatAt')} IS NULL AND ${c(db, 'startedAt')} < ${ts(db)}))`,
    // Rows from before the heartbeat column have none: their start is the last sign of life.
    [...[where.sourceId, where.formId].filter((v) => v !== undefined), cutoff, cutoff],
  );
  for (const r of stale) {
    // Its last sign of life: the closest we know to when it stopped.
    const seen = timeOf(r.heartbeatAt ?? r.startedAt);
    // Conditional on still 'running': a run that finished meanwhile (a slow final write) keeps its own end.
    await db.sql.execute(
      `UPDATE ${c(db, 'SyncRun')} SET ${c(db, 'outcome')} = 'interrupted', ${c(db, 'finishedAt')} = ${ts(db)}, ${c(db, 'error')} = ? WHERE ${c(db, 'id')} = ? AND ${c(db, 'outcome')} = 'running'`,
      [at(db, seen), `interrupted: the process running it stopped or lost the database (no heartbeat since ${seen.toISOString()}); the counts are those last written. Closed when a later run started.`, String(r.id)],
    );
  }
  return stale.map(({ id, sourceId, formId, mode }) => ({ id: BigInt(id), sourceId, formId, mode }));
}

/**
 * How many of the source's latest finished runs (any form, discovery included) were
 * refused credentials in a row, and when the last of them started. The import log is
 * the memory of the auth backoff: nothing else to keep, and any successful run (a CLI
 * one too) ends it.
 */
export async function authFailureStreak(db: Database, sourceId: string, lookBack = 16): Promise<{ count: number; lastAt: Date | null }> {
  // By id (the primary key, in start order): cheap however long the log grows.
  const runs = await db.sql.query<{ outcome: string; startedAt: Date | string }>(
    `SELECT ${c(db, 'outcome')}, ${c(db, 'startedAt')} FROM ${c(db, 'SyncRun')}
WHERE ${c(db, 'sourceId')} = ? AND ${c(db, 'outcome')} NOT IN ('running', 'skipped', 'interrupted') ORDER BY ${c(db, 'id')} DESC LIMIT ${Math.max(1, Math.floor(lookBack))}`,
    [sourceId],
  );
  let count = 0;
  while (count < runs.length && runs[count]!.outcome === 'auth_failed') count++;
  return { count, lastAt: count ? timeOf(runs[0]!.startedAt) : null };
}

/**
 * What the loaders met while typing a run's records: answers that did not fit their
 * column (NULL there, intact in Submission) are added to `unfitValues`; type conflicts
 * (old column kept, a suffixed one added) are noted once each in `typeChanges`.
 * Called after the batch committed, so a retried batch may count twice: a count, not a ledger.
 */
export async function countRunTypedIssues(db: Database, id: bigint, issues: { unfit: number; typeChanges?: string[] }): Promise<void> {
  const notes = issues.typeChanges ?? [];
  const where = `WHERE ${c(db, 'id')} = ?`;
  if (issues.unfit > 0) {
    await db.sql.execute(`UPDATE ${c(db, 'SyncRun')} SET ${c(db, 'unfitValues')} = ${c(db, 'unfitValues')} + ? ${where}`, [Math.floor(issues.unfit), String(id)]);
  }
  if (notes.length === 0) return;
  // Every batch of a form carries the same notes: write only what is new (a lost race re-adds it next batch).
  const row = (await db.sql.query<{ typeChanges: string | null }>(`SELECT ${c(db, 'typeChanges')} FROM ${c(db, 'SyncRun')} ${where}`, [String(id)]))[0];
  if (!row) return;
  const have = new Set((row.typeChanges ?? '').split('\n').filter(Boolean));
  const fresh = notes.filter((n) => !have.has(n));
  if (fresh.length) {
    await db.sql.execute(`UPDATE ${c(db, 'SyncRun')} SET ${c(db, 'typeChanges')} = ? ${where}`, [[...have, ...fresh].join('\n').slice(0, 10_000), String(id)]);
  }
}

export async function finishRun(
  db: Database,
  id: bigint,
  result: { outcome: Exclude<RunOutcome, 'running'>; fetched: number; enqueued: number; cursorTo?: Cursor | null; error?: string },
): Promise<void> {
  const now = at(db, new Date());
  // No cursor or error given: the row keeps what it has.
  await db.sql.execute(
    `UPDATE ${c(db, 'SyncRun')} SET ${c(db, 'finishedAt')} = ${ts(db)}, ${c(db, 'heartbeatAt')} = ${ts(db)}, ${c(db, 'outcome')} = ?, ${c(db, 'fetched')} = ?, ${c(db, 'enqueued')} = ?,
  ${c(db, 'cursorTo')} = COALESCE(${js(db)}, ${c(db, 'cursorTo')}), ${c(db, 'error')} = COALESCE(?, ${c(db, 'error')}) WHERE ${c(db, 'id')} = ?`,
    [now, now, result.outcome, result.fetched, result.enqueued, result.cursorTo == null ? null : JSON.stringify(result.cursorTo), result.error?.slice(0, 10_000) ?? null, String(id)],
  );
}
