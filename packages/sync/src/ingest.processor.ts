import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import type { CanonicalSubmission } from '@fieldsync/model';
import { upsertSubmissions, upsertSubmissionsJson, recordDeadLetter, countRunTypedIssues, type Database, type JsonBatchCount } from '@fieldsync/db';
import { IngestBatch, DeadLetter, jobDataText, type IngestBatchData, type Queues } from '@fieldsync/queues';
import type { Logger } from '@fieldsync/logger';
import { typedTablesFromConfig, type TypedTables } from '@fieldsync/tables';
import type { FieldsyncConfig } from '@fieldsync/config';
import type { LoaderMetrics } from '@fieldsync/metrics';
import { isDataError, isUnavailable } from './db-errors.ts';

export interface IngestDeps {
  db: Database;
  queues: Pick<Queues, 'deadLetter'>;
  log: Logger;
  /** Waits while the database is unreachable; these do not spend the job's attempts. */
  outage?: { maxRetries: number; baseDelayMs: number; maxDelayMs: number };
  /** Typed analyst tables, written in the raw upsert's transaction; null = off; absent = from `config`. */
  tables?: Pick<TypedTables, 'prepare'> | null;
  /** The loader's config: switches typed tables on (`tables.enabled`, per source) unless `tables` is given. */
  config?: FieldsyncConfig;
  /** Prometheus counters (records loaded, batches, dead letters…); absent = not recorded. */
  metrics?: Pick<LoaderMetrics, 'recordsLoaded' | 'batchDuration' | 'deadLetters' | 'poisonRecords' | 'outageWaits'>;
  /**
   * Runs after a batch commits, with the records stored (the loader enqueues their
   * attachment files here). Its failure is logged, never fails the batch: the rows are in.
   */
  afterCommit?: (stored: CanonicalSubmission[]) => Promise<unknown>;
}

/** Counts per source/form(/via) label set: one inc per set, not per record. */
function countBy<K extends string>(items: CanonicalSubmission[], labels: (s: CanonicalSubmission) => Record<K, string>): [Record<K, string>, number][] {
  const out = new Map<string, [Record<K, string>, number]>();
  for (const s of items) {
    const l = labels(s);
    const k = Object.values(l).join('\0');
    const e = out.get(k);
    if (e) e[1]++;
    else out.set(k, [l, 1]);
  }
  return [...out.values()];
}

export interface IngestResult {
  loaded: number;
  poison: number;
  /** Answers that did not fit their typed column (NULL there, intact in Submission). */
  unfit?: number;
}

/** Records the database refused one by one, after the rest of their batch was stored. */
export class PoisonRecordsError extends Error {
  override name = 'PoisonRecordsError';
  constructor(readonly failures: { key: string; error: string }[]) {
    super(`${failures.length} record(s) refused by the database: ${failures.slice(0, 5).map((f) => `${f.key}: ${f.error}`).join('; ')}`);
  }
}

type Stored = { ok: CanonicalSubmission[]; bad: { s: CanonicalSubmission; err: unknown }[]; unfit?: number; typeChanges?: string[] };

/**
 * Stores a batch in one transaction; when the database refuses it for its
 * data, splits it in halves (each its own transaction) until the refused
 * records stand alone, so every other record still lands.
 */
export async function storeIsolatingPoison(db: Database, batch: CanonicalSubmission[], tables?: IngestDeps['tables']): Promise<Stored> {
  try {
    // Typed tables are planned (DDL) before the transaction: MySQL DDL would commit it.
    const typed = tables ? await tables.prepare(db, batch) : null;
    const r = await db.transaction(async (sql) => {
      const up = await upsertSubmissions(db, batch, sql);
      // Copied from the rows the upsert left, so they obey newest-wins and commit with them.
      return typed?.apply(sql, up.inserted, up.written);
    });
    return { ok: batch, bad: [], unfit: r?.unfit ?? 0, typeChanges: r?.typeChanges ?? [] };
  } catch (err) {
    if (!isDataError(err)) throw err;
    if (batch.length === 1) return { ok: [], bad: [{ s: batch[0]!, err }] };
    const mid = Math.ceil(batch.length / 2);
    const a = await storeIsolatingPoison(db, batch.slice(0, mid), tables);
    const b = await storeIsolatingPoison(db, batch.slice(mid), tables);
    return { ok: [...a.ok, ...b.ok], bad: [...a.bad, ...b.bad], unfit: (a.unfit ?? 0) + (b.unfit ?? 0), typeChanges: [...new Set([...(a.typeChanges ?? []), ...(b.typeChanges ?? [])])] };
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Copies a job whose attempts are spent to the DeadLetter table and the dead-letter queue. */
export async function deadLetter(deps: Pick<IngestDeps, 'db' | 'queues' | 'log' | 'metrics'>, job: Job, err: unknown): Promise<void> {
  const data = job.data as Partial<IngestBatchData>;
  const first = data.submissions?.[0];
  const error = message(err);
  deps.metrics?.deadLetters.inc({ source: first?.sourceId ?? 'unknown' });
  if (err instanceof PoisonRecordsError && data.submissions) {
    for (const [l, n] of countBy(data.submissions, (s) => ({ source: s.sourceId, form: s.formId }))) deps.metrics?.poisonRecords.inc(l, n);
  }
  const deadLetterId = await keepDeadLetter(deps, job, { sourceId: first?.sourceId ?? null, formId: first?.formId ?? null, error });
  deps.log.error({ jobId: job.id, deadLetterId, error, records: data.submissions?.length }, 'ingest job dead-lettered');
}

/**
 * Any job given up on, kept twice: a DeadLetter row (the dashboard, replay) and a
 * dead-letter queue copy (visible in Bull Board even when the row could not be
 * written because the database is down). Returns the row id when there is one.
 */
export async function keepDeadLetter(
  deps: Pick<IngestDeps, 'db' | 'queues' | 'log'>,
  job: Job,
  what: { sourceId: string | null; formId: string | null; error: string },
): Promise<string | undefined> {
  let deadLetterId: string | undefined;
  try {
    deadLetterId = String(
      await recordDeadLetter(deps.db, {
        queue: job.queueName, jobName: job.name, jobId: job.id ?? null,
        sourceId: what.sourceId, formId: what.formId,
        payload: job.data, error: what.error, attempts: job.attemptsMade + 1,
      }),
    );
  } catch (dbErr) {
    // The queue copy below still makes it visible and replayable.
    deps.log.error({ err: dbErr, jobId: job.id }, 'could not write DeadLetter row');
  }
  await deps.queues.deadLetter.add(
    DeadLetter.name,
    DeadLetter.payload.parse({
      queue: job.queueName, jobName: job.name, jobId: job.id, data: job.data, error: what.error,
      attemptsMade: job.attemptsMade + 1, failedAt: new Date().toISOString(), deadLetterId,
    }),
    DeadLetter.options,
  );
  return deadLetterId;
}

/**
 * After the commit: a poll's batch adds its unfit values and type conflicts to its
 * SyncRun row; a webhook batch (no run) has only the log line the typed layer wrote.
 * Never fails the job: its records are stored.
 */
async function countIssues(deps: Pick<IngestDeps, 'db' | 'log'>, runId: string | undefined, unfit: number, typeChanges: string[]): Promise<void> {
  if (!runId || (unfit === 0 && typeChanges.length === 0)) return;
  try {
    await countRunTypedIssues(deps.db, BigInt(runId), { unfit, typeChanges });
  } catch (err) {
    deps.log.warn({ runId, unfit, typeChanges, err: message(err) }, 'could not add typed-table counts to the SyncRun row');
  }
}

/** An outage of any length is waited out: the job is not the problem, and giving up would lose it. */
export const WAIT_OUT_ANY_OUTAGE: NonNullable<IngestDeps['outage']> = { maxRetries: Number.POSITIVE_INFINITY, baseDelayMs: 1_000, maxDelayMs: 30_000 };

/**
 * Back to the queue in `delayMs`, `data` merged into the job's, without spending an
 * attempt: BullMQ counts only thrown failures, and a move to delayed is not one.
 */
export async function retryWithoutAttempt(job: Job, token: string, delayMs: number, data: Record<string, unknown>): Promise<never> {
  await job.updateData({ ...job.data, ...data });
  await job.moveToDelayed(Date.now() + delayMs, token);
  throw new DelayedError();
}

/**
 * A job that failed because the database is down goes back to the queue, delayed with
 * backoff and jitter, without spending an attempt. Returns when the outage retries are used up.
 */
export async function waitOutOutage(
  job: Job,
  token: string,
  outage: NonNullable<IngestDeps['outage']>,
  deps: { log: Logger; metrics?: { outageWaits: { inc(): void } } },
  about: { what: string; err?: string },
): Promise<void> {
  const n = ((job.data as { outageRetries?: number }).outageRetries ?? 0) + 1;
  if (n > outage.maxRetries) return;
  deps.metrics?.outageWaits.inc();
  const delay = Math.min(outage.baseDelayMs * 2 ** Math.min(n - 1, 10), outage.maxDelayMs);
  deps.log.warn({ jobId: job.id, name: job.name, retry: n, delayMs: delay, ...(about.err ? { err: about.err } : {}) }, `database unavailable; ${about.what} waits`);
  await retryWithoutAttempt(job, token, Math.round(delay * (0.5 + Math.random() / 2)), { outageRetries: n });
}

function isFinalAttempt(job: Job): boolean {
  return job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
}

/**
 * The ingest worker's processor. Throws to let BullMQ retry with backoff; on
 * the final attempt it dead-letters the job itself before rethrowing, so the
 * failure is both recorded and visible as failed.
 */
export function createIngestProcessor(deps: IngestDeps) {
  const tables = deps.tables !== undefined ? deps.tables : deps.config ? typedTablesFromConfig(deps.config, deps.db.dialect, deps.log) : null;
  const outage = deps.outage ?? WAIT_OUT_ANY_OUTAGE;
  // Without typed tables or attachments nothing needs a batch's records in JavaScript: on
  // PostgreSQL the job's JSON text goes to the database as Redis held it (LazyDataWorker).
  const jsonPath = deps.db.dialect === 'postgresql' && !tables && !deps.afterCommit;
  return async (job: Job<IngestBatchData & { outageRetries?: number }>, token?: string): Promise<IngestResult> => {
    // One observation per attempt, whatever path it ends on.
    const end = deps.metrics?.batchDuration.startTimer();
    let timed = false;
    const timer = (labels: { outcome: string }) => {
      if (!timed) end?.(labels);
      timed = true;
    };
    const failed = async (err: unknown): Promise<never> => {
      if (!(err instanceof PoisonRecordsError)) timer({ outcome: isUnavailable(err) ? 'db_unavailable' : 'failed' });
      if (isUnavailable(err) && token) {
        await waitOutOutage(job, token, outage, deps, { what: 'ingest job', err: message(err) });
      }
      if (isFinalAttempt(job)) await deadLetter(deps, job, err);
      throw err;
    };
    const text = jsonPath ? jobDataText(job) : undefined;
    if (text !== undefined) {
      let counts: JsonBatchCount[] | null = null;
      try {
        counts = await upsertSubmissionsJson(deps.db.sql, text); // one statement: atomic by itself
      } catch (err) {
        // A record that fails a check or that the database refuses, two copies of one key (all
        // changed nothing): the parsed path below validates, picks the newest copy, isolates the refused.
        if (isUnavailable(err)) await failed(err);
        deps.log.debug({ jobId: job.id, err: message(err) }, 'ingest batch takes the parsed path');
      }
      if (counts) {
        for (const c of counts) deps.metrics?.recordsLoaded.inc({ source: c.sourceId, form: c.formId, via: c.via }, c.n);
        timer({ outcome: 'ok' });
        return { loaded: counts.reduce((a, c) => a + c.n, 0), poison: 0, unfit: 0 };
      }
    }
    const parsed = IngestBatch.payload.safeParse(job.data);
    if (!parsed.success) {
      const err = new UnrecoverableError(`invalid ingest payload: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
      await deadLetter(deps, job, err);
      timer({ outcome: 'invalid' });
      throw err;
    }
    const batch = parsed.data.submissions;
    try {
      const { ok, bad, unfit, typeChanges } = await storeIsolatingPoison(deps.db, batch, tables);
      await countIssues(deps, parsed.data.runId, unfit ?? 0, typeChanges ?? []);
      if (deps.afterCommit && ok.length) {
        await deps.afterCommit(ok).catch((err: unknown) => deps.log.warn({ jobId: job.id, err: message(err) }, 'after-commit step failed (attachments not queued for this batch)'));
      }
      for (const [l, n] of countBy(ok, (s) => ({ source: s.sourceId, form: s.formId, via: s.via }))) deps.metrics?.recordsLoaded.inc(l, n);
      timer({ outcome: bad.length ? 'poison' : 'ok' });
      if (bad.length === 0) return { loaded: ok.length, poison: 0, unfit };
      // Keep only the refused records in the job, so retries (and the dead letter) carry just them.
      const storedKeys = [...(parsed.data.storedKeys ?? []), ...ok.map((s) => s.key)];
      await job.updateData({ submissions: bad.map((b) => b.s), runId: parsed.data.runId, storedKeys });
      throw new PoisonRecordsError(bad.map((b) => ({ key: b.s.key, error: message(b.err) })));
    } catch (err) {
      return failed(err);
    }
  };
}
