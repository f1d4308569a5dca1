import type { CanonicalSubmission } from '@fieldsync/model';
import { loadCursor, saveCursor, resetCursor, startRun, finishRun, storedVersions, type Database, type Cursor } from '@fieldsync/db';
import type { SourceConnector } from '@fieldsync/connectors';
import { IngestBatch, type Queues } from '@fieldsync/queues';
import type { JobsOptions } from 'bullmq';
import type { Logger } from '@fieldsync/logger';

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
  /** Records per ingest job. */
  batchSize: number;
  /** Per-job options from config (attempts, backoff). */
  ingestOptions?: JobsOptions;
}

export interface PollRequest {
  connector: SourceConnector;
  formId: string;
  mode: PollMode;
  onProgress?: (p: PollProgress) => void;
  signal?: AbortSignal;
}

export interface PollSummary extends PollProgress {
  runId: bigint;
  cursor: Cursor | null;
}

/** Enqueues submissions as ingest jobs of batchSize; resolves once Redis has them all. */
async function enqueue(deps: PollDeps, submissions: CanonicalSubmission[]): Promise<number> {
  if (submissions.length === 0) return 0;
  const jobs = [];
  for (let i = 0; i < submissions.length; i += deps.batchSize) {
    jobs.push({
      name: IngestBatch.name,
      data: { submissions: submissions.slice(i, i + deps.batchSize) },
      opts: { ...IngestBatch.options, ...deps.ingestOptions },
    });
  }
  await deps.queues.ingest.addBulk(jobs);
  return submissions.length;
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
  if (mode === 'backfill') await resetCursor(db, sourceId, formId);
  const saved = mode === 'backfill' ? null : await loadCursor(db, sourceId, formId);
  const from = mode === 'poll' ? saved : null;
  const runId = await startRun(db, sourceId, formId, mode, from);
  if (mode === 'sweep' && saved === null) {
    // Nothing to reconcile before the first full pull has finished; sweeping now would
    // only re-fetch, record by record, what that pull is already loading.
    await finishRun(db, runId, { outcome: 'skipped', fetched: 0, enqueued: 0, error: 'no completed poll yet' });
    log.info({ sourceId, formId }, 'sweep skipped: the form has not been polled yet');
    return { runId, cursor: null, fetched: 0, enqueued: 0 };
  }
  const progress: PollProgress = { fetched: 0, enqueued: 0 };
  let cursor: Cursor | null = from;
  const started = Date.now();
  try {
    if (mode === 'sweep') {
      const held = await storedVersions(db, sourceId, formId, { probe: connector.sweepProbe });
      for await (const page of connector.sweep(formId, held, { signal: req.signal })) {
        progress.fetched = page.checked;
        progress.total = page.total;
        progress.enqueued += await enqueue(deps, page.submissions);
        req.onProgress?.({ ...progress });
      }
    } else {
      for await (const page of connector.pull(formId, from, { via: mode, signal: req.signal })) {
        progress.fetched += page.submissions.length;
        if (page.total !== undefined) progress.total = page.total;
        progress.enqueued += await enqueue(deps, page.submissions);
        if (page.cursor) {
          await saveCursor(db, sourceId, formId, page.cursor);
          cursor = page.cursor;
        }
        req.onProgress?.({ ...progress });
      }
    }
    await finishRun(db, runId, { outcome: 'ok', fetched: progress.fetched, enqueued: progress.enqueued, cursorTo: cursor });
    log.info({ sourceId, formId, mode, ...progress, ms: Date.now() - started }, 'sync run finished');
    return { runId, cursor, ...progress };
  } catch (err) {
    const error = err instanceof Error ? err.message : String(err);
    await finishRun(db, runId, { outcome: 'failed', fetched: progress.fetched, enqueued: progress.enqueued, cursorTo: cursor, error }).catch((e) =>
      log.error({ err: e }, 'could not record failed SyncRun'),
    );
    log.error({ sourceId, formId, mode, ...progress, error }, 'sync run failed');
    throw err;
  }
}
