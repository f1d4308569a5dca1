import type { CanonicalSubmission } from '@fieldsync/model';
import { loadCursor, saveCursor, resetCursor, startRun, finishRun, progressRun, closeStaleRuns, openStoredIndex, type Database, type Cursor } from '@fieldsync/db';
import { AuthError, tombstonePages, type SourceConnector } from '@fieldsync/connectors';
import { IngestBatch, addJobs, type Queues } from '@fieldsync/queues';
import type { JobsOptions } from 'bullmq';
import type { Logger } from '@fieldsync/logger';
import type { PollerMetrics } from '@fieldsync/metrics';
import { watchFormSchemas } from './form-schemas.ts';
import { readAhead } from './read-ahead.ts';

export type PollMode = 'poll' | 'sweep' | 'backfill';

export interface PollProgress {
  fetched: number;
  enqueued: number;
  total?: number;
}

export interface PollDeps {
  db: Database;
  queues: Pick<Queues, 'ingest'>;
  log: Logger;
  /** Most records per ingest job (fewer where records are big: see recordsPerJob). */
  batchSize: number;
  /** Per-job options from config (attempts, backoff). */
  ingestOptions?: JobsOptions;
  /** How often the run's counts and heartbeat are written while it runs. Default 5 s. */
  progressEveryMs?: number;
  /** A 'running' run of the same form silent this long is closed as interrupted. Default RUN_STALE_AFTER_MS (2 min). */
  staleAfterMs?: number;
  /** Prometheus metrics of the poller; absent = not recorded. */
  metrics?: Pick<PollerMetrics, 'syncRuns' | 'syncRunDuration' | 'recordsFetched' | 'loginFailures'>;
}

/** One finished run in the metrics: its outcome, duration and the records it read. */
export function observeRun(m: PollDeps['metrics'], r: { source: string; form: string; mode: string; outcome: string; startedMs: number; fetched: number }): void {
  if (!m) return;
  m.syncRuns.inc({ source: r.source, form: r.form, mode: r.mode, outcome: r.outcome });
  m.syncRunDuration.observe({ source: r.source, mode: r.mode, outcome: r.outcome }, (Date.now() - r.startedMs) / 1000);
  if (r.fetched) m.recordsFetched.inc({ source: r.source, form: r.form, mode: r.mode }, r.fetched);
  if (r.outcome === 'auth_failed') m.loginFailures.inc({ source: r.source });
}

export interface PollRequest {
  connector: SourceConnector;
  formId: string;
  mode: PollMode;
  onProgress?: (p: PollProgress) => void;
  signal?: AbortSignal;
  /** Where the source sits in the config file (`sources[0]`): credential errors name the key to fix. */
  configPath?: string;
}

export interface PollSummary extends PollProgress {
  runId: bigint;
  cursor: Cursor | null;
}

/**
 * Characters of record JSON an ingest job aims to stay under, whatever batchSize says: a job is held whole
 * in Redis and in the loader's memory (four at once per loader), and a form whose records
 * carry big repeats can reach tens of kB a record.
 */
export const JOB_TARGET_BYTES = 4 * 1024 * 1024;

/**
 * Records per job for this page: batchSize, or fewer where the page's records are big. Their
 * size is estimated from up to five of them: serializing all would double the enqueue's cost.
 */
export function recordsPerJob(submissions: CanonicalSubmission[], batchSize: number): number {
  const n = submissions.length;
  if (n <= 1) return batchSize;
  const picks = [...new Set([0, n >> 2, n >> 1, (3 * n) >> 2, n - 1])];
  const avg = picks.reduce((sum, i) => sum + JSON.stringify(submissions[i]!.data).length, 0) / picks.length;
  return Math.max(1, Math.min(batchSize, Math.floor(JOB_TARGET_BYTES / Math.max(avg, 1))));
}

/** Enqueues submissions as ingest jobs (see recordsPerJob); resolves once Redis has them all. */
async function enqueue(deps: PollDeps, submissions: CanonicalSubmission[], runId: bigint): Promise<number> {
  if (submissions.length === 0) return 0;
  const jobs = [];
  const per = recordsPerJob(submissions, deps.batchSize);
  for (let i = 0; i < submissions.length; i += per) {
    jobs.push({
      name: IngestBatch.name,
      // runId: the loader counts unfit typed values into this run's SyncRun row.
      data: { submissions: submissions.slice(i, i + per), runId: String(runId) },
      opts: { ...IngestBatch.options, ...deps.ingestOptions },
    });
  }
  await addJobs(deps.queues.ingest, jobs);
  return submissions.length;
}

/**
 * Writes the run's counts and heartbeat at most every `everyMs`: on the first page,
 * then as pages arrive, and on a timer between them (a poll waiting out a long
 * Retry-After is alive). A failed write (database away) is logged once and retried
 * at the next tick; the run goes on.
 */
function heartbeat(deps: PollDeps, runId: bigint, progress: PollProgress) {
  const everyMs = deps.progressEveryMs ?? 5_000;
  let last = 0;
  let writing: Promise<void> | undefined;
  let failing = false;
  const write = (due = false) => {
    if (writing || (!due && Date.now() - last < everyMs)) return;
    last = Date.now();
    writing = progressRun(deps.db, runId, { fetched: progress.fetched, enqueued: progress.enqueued })
      .then(
        () => void (failing = false),
        (err: unknown) => {
          if (!failing) deps.log.warn({ runId: String(runId), err: (err as Error).message }, 'could not write sync run progress; will retry');
          failing = true;
        },
      )
      .finally(() => (writing = undefined));
  };
  const timer = setInterval(() => write(true), everyMs);
  timer.unref();
  return {
    page: () => write(),
    /** Waits for a write in flight, so it cannot land after the final counts. */
    async stop() {
      clearInterval(timer);
      await writing;
    },
  };
}

async function closeStale(deps: PollDeps, sourceId: string, formId: string): Promise<void> {
  const closed = await closeStaleRuns(deps.db, { sourceId, formId, staleAfterMs: deps.staleAfterMs });
  if (closed.length) deps.log.warn({ sourceId, formId, runs: closed.map((r) => `${String(r.id)} (${r.mode})`) }, 'closed sync runs left running by a process that is gone as interrupted');
}

/**
 * One poll, sweep or backfill of one form. Pages from the stored cursor,
 * enqueues each page, and moves the cursor only after the pages it covers are
 * in Redis — a crash anywhere re-reads, never skips. Writes a SyncRun row.
 */
export async function runPoll(deps: PollDeps, req: PollRequest): Promise<PollSummary> {
  const { db, log } = deps;
  const { connector, formId, mode } = req;
  const sourceId = connector.sourceId;
  const startedMs = Date.now();
  const observe = (outcome: string, fetched: number) => observeRun(deps.metrics, { source: sourceId, form: formId, mode, outcome, startedMs, fetched });
  if (mode === 'backfill') await resetCursor(db, sourceId, formId);
  const saved = mode === 'backfill' ? null : await loadCursor(db, sourceId, formId);
  const from = mode === 'poll' ? saved : null;
  // Runs of this form that a dead process left 'running' (kill -9, lost database) end here.
  await closeStale(deps, sourceId, formId);
  const runId = await startRun(db, sourceId, formId, mode, from);
  // Nothing to reconcile before the first full pull has finished (sweeping would only
  // re-fetch, record by record, what that pull is loading) — unless webhooks have
  // stored rows already: those the sweep must be free to repair.
  if (mode === 'sweep' && saved === null && !(await db.prisma.submission.findFirst({ where: { sourceId, formId }, select: { id: true } }))) {
    await finishRun(db, runId, { outcome: 'skipped', fetched: 0, enqueued: 0, error: 'no completed poll yet' });
    log.info({ sourceId, formId }, 'sweep skipped: the form has not been polled yet');
    observe('skipped', 0);
    return { runId, cursor: null, fetched: 0, enqueued: 0 };
  }
  const progress: PollProgress = { fetched: 0, enqueued: 0 };
  let cursor: Cursor | null = from;
  const started = Date.now();
  const beat = heartbeat(deps, runId, progress);
  try {
    // Form definitions first (FormSchema), so typed tables know every version this run loads.
    const schemas = await watchFormSchemas(deps, connector, formId, { mode, signal: req.signal });
    if (mode === 'sweep') {
      // Opened before the walk: rows stored while it runs are never taken for deletions.
      const held = await openStoredIndex(db, sourceId, formId, { probe: connector.sweepProbe });
      for await (const page of connector.sweep(formId, held, { signal: req.signal })) {
        progress.fetched = page.checked;
        progress.total = page.total;
        progress.enqueued += await enqueue(deps, page.submissions, runId);
        beat.page();
        req.onProgress?.({ ...progress });
      }
    } else {
      // A reloading backfill remembers every key it read, to mark the rest deleted once the walk is complete.
      const seen = mode === 'backfill' && connector.reconcileOnBackfill ? new Set<string>() : undefined;
      // What was stored before the walk: the candidates for deletion once it is complete.
      const before = seen ? await openStoredIndex(db, sourceId, formId) : undefined;
      for await (const page of readAhead(connector.pull(formId, from, { via: mode, signal: req.signal }))) {
        if (seen) for (const s of page.submissions) seen.add(s.key);
        progress.fetched += page.submissions.length;
        if (page.total !== undefined) progress.total = page.total;
        // Definitions of versions these records carry go in before the records do: the loader types them with their own layout.
        await schemas.observe(page.submissions);
        progress.enqueued += await enqueue(deps, page.submissions, runId);
        if (page.cursor) {
          await saveCursor(db, sourceId, formId, page.cursor);
          cursor = page.cursor;
        }
        beat.page();
        req.onProgress?.({ ...progress });
      }
      if (seen && before) {
        // Rows are replaced in place as the reload's batches load, so a reader never sees
        // the dataset emptied; only the rows the source no longer has go, as tombstones
        // enqueued after every page (disjoint keys: no batch of this run can revive them),
        // a chunk of the stored rows at a time.
        let deleted = 0;
        for await (const gone of tombstonePages(sourceId, formId, before, (k) => seen.has(k))) {
          progress.enqueued += await enqueue(deps, gone, runId);
          deleted += gone.length;
        }
        if (deleted) log.info({ sourceId, formId, deleted }, 'backfill reload: rows gone at the source marked deleted');
      }
    }
    await beat.stop();
    await finishRun(db, runId, { outcome: 'ok', fetched: progress.fetched, enqueued: progress.enqueued, cursorTo: cursor });
    observe('ok', progress.fetched);
    log.info({ sourceId, formId, mode, ...progress, ms: Date.now() - started }, 'sync run finished');
    // A run that died while this one ran (e.g. the attempt before a stalled job's re-run) is closed now, not at the next run.
    await closeStale(deps, sourceId, formId).catch(() => {});
    return { runId, cursor, ...progress };
  } catch (err) {
    await beat.stop();
    const auth = err instanceof AuthError;
    observe(auth ? 'auth_failed' : 'failed', progress.fetched);
    const error = auth ? (req.configPath ? err.at(req.configPath) : err.message) : err instanceof Error ? err.message : String(err);
    // If this write fails too (database away), the row stays 'running' without heartbeats and a later run closes it as interrupted.
    await finishRun(db, runId, { outcome: auth ? 'auth_failed' : 'failed', fetched: progress.fetched, enqueued: progress.enqueued, cursorTo: cursor, error }).catch((e) =>
      log.error({ err: e }, 'could not record failed SyncRun'),
    );
    if (auth) log.error({ sourceId, formId, mode, error }, 'sync run refused by the source: fix the credentials');
    else log.error({ sourceId, formId, mode, ...progress, error }, 'sync run failed');
    throw err;
  }
}
