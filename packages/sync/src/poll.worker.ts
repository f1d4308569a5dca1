import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { FieldsyncConfig, SourceConfig } from '@fieldsync/config';
import { AuthError, createConnector, type SourceConnector } from '@fieldsync/connectors';
import { authFailureStreak, closeStaleRuns, finishRun, startRun, type Database } from '@fieldsync/db';
import { QUEUE, PollForm, DiscoverForms, createRedis, ingestJobOptions, type PollFormData, type DiscoverFormsData } from '@fieldsync/queues';
import type { Logger } from '@fieldsync/logger';
import type { PollerMetrics } from '@fieldsync/metrics';
import { lockOptions, type WorkerDeps, type WorkerTiming } from './ingest.worker.ts';
import { observeRun, runPoll } from './poll.runner.ts';
import { scheduleDiscoveredForms } from './schedules.ts';
import { isUnavailable } from './db-errors.ts';
import { WAIT_OUT_ANY_OUTAGE, retryWithoutAttempt, waitOutOutage } from './ingest.processor.ts';

/** Connectors are built once per source and reused by every job; `configPath` (`sources[0]`) for messages. */
export function connectorsFor(config: FieldsyncConfig, log: Logger, metrics?: Pick<PollerMetrics, 'httpRequests'>): Map<string, { source: SourceConfig; connector: SourceConnector; configPath: string }> {
  return new Map(
    config.sources.map((source, i) => {
      const onResponse = metrics && ((status: string) => metrics.httpRequests.inc({ source: source.id, status }));
      return [source.id, { source, connector: createConnector(source, { logger: log, onResponse }), configPath: `sources[${i}]` }];
    }),
  );
}

/** Pause of a source's scheduled runs after `failures` refused logins in a row: doubling from baseMs, capped at maxMs. */
export interface AuthBackoff {
  baseMs: number;
  maxMs: number;
}
export const AUTH_BACKOFF: AuthBackoff = { baseMs: 60_000, maxMs: 3_600_000 };

export function authPauseMs(failures: number, b: AuthBackoff = AUTH_BACKOFF): number {
  return failures <= 0 ? 0 : Math.min(b.baseMs * 2 ** Math.min(failures - 1, 30), b.maxMs);
}

/**
 * When a scheduled run of this source may try its credentials again: null when it
 * may now. The streak is read from the import log (see authFailureStreak), so every
 * replica agrees and a success anywhere ends the pause. A skipped run writes nothing.
 */
async function authPausedUntil(db: Database, sourceId: string, b: AuthBackoff): Promise<Date | null> {
  const streak = await authFailureStreak(db, sourceId);
  if (!streak.lastAt) return null;
  const until = new Date(streak.lastAt.getTime() + authPauseMs(streak.count, b));
  return until.getTime() > Date.now() ? until : null;
}

/** The poller's worker: consumes `poll` (polls, sweeps, backfills, form discovery). */
export function startPollWorker(
  deps: WorkerDeps &
    WorkerTiming & {
      config: FieldsyncConfig;
      concurrency?: number;
      /** Refused-credential pause; tests shorten it. */
      authBackoff?: AuthBackoff;
      /** Run progress/heartbeat interval and staleness threshold (see PollDeps); tests shorten them. */
      progressEveryMs?: number;
      staleAfterMs?: number;
      /** Prometheus metrics of the poller; absent = not recorded. */
      metrics?: Omit<PollerMetrics, 'registry'>;
    },
): Worker {
  const { log, metrics } = deps;
  const sources = connectorsFor(deps.config, log, metrics);
  const backoff = deps.authBackoff ?? AUTH_BACKOFF;
  // Runs a dead poller left 'running' are closed now rather than at their form's next run.
  void closeStaleRuns(deps.db, { staleAfterMs: deps.staleAfterMs }).then(
    (closed) => closed.length && log.warn({ runs: closed.map((r) => `${r.sourceId}/${r.formId} ${String(r.id)} (${r.mode})`) }, 'closed sync runs left running by a process that is gone as interrupted'),
    (err: unknown) => log.warn({ err: (err as Error).message }, 'could not check for interrupted sync runs'),
  );
  /**
   * A job of a source the config no longer has (removed, renamed): nothing can run it,
   * and retrying only fails again. Completed as dropped, its scheduler removed (the
   * poller's start-up syncSchedules removes those too; a job already queued remains).
   */
  const drop = async (job: Job, sourceId: string) => {
    if (job.repeatJobKey) await deps.queues.poll.removeJobScheduler(job.repeatJobKey).catch(() => false);
    log.warn({ jobId: job.id, name: job.name, sourceId, scheduler: job.repeatJobKey }, 'dropped a poll job of a source that is not in the config');
    return { dropped: `unknown source "${sourceId}"` };
  };
  /** A refused credential ends the job now: its retries would be refused too, one failed login each. */
  const unrecoverable = (err: unknown): unknown => (err instanceof AuthError ? new UnrecoverableError(err.message) : err);
  // Closing the worker aborts polls in flight: a source that is down could keep a poll
  // retrying for minutes, and an aborted poll loses nothing (its cursor has not moved).
  const closing = new AbortController();
  /**
   * A run that failed while the database is down waits for it without spending an
   * attempt (a 30 s outage would otherwise use all three and leave a backfill for the
   * next schedule). The database is probed rather than the error read: a source that
   * refuses connections fails with the same ECONNREFUSED.
   */
  const waitIfDatabaseDown = async (job: Job, token: string | undefined, err: unknown): Promise<void> => {
    if (!token || err instanceof AuthError || closing.signal.aborted) return;
    try {
      await deps.db.sql.query('SELECT 1');
    } catch (probe) {
      if (!isUnavailable(probe)) return;
      return waitOutOutage(job, token, WAIT_OUT_ANY_OUTAGE, { log, metrics }, { what: 'poll job' });
    }
    // Back by the time of the probe. An attempt already running when it came back failed on
    // the outage all the same: after a wait for an outage, one such failure is retried free.
    // Only then: a source that refuses connections fails with the same codes, and spends its attempts.
    const data = job.data as { outageRetries?: number; outageRecovered?: boolean };
    if (!isUnavailable(err) || !data.outageRetries || data.outageRecovered) return;
    log.warn({ jobId: job.id, name: job.name, err: (err as Error).message }, 'database back during the attempt; poll job retries without spending it');
    await retryWithoutAttempt(job, token, 200, { outageRecovered: true });
  };
  const processor = async (job: Job, token?: string, cancelled?: AbortSignal) => {
    try {
      return await run(job, cancelled);
    } catch (err) {
      await waitIfDatabaseDown(job, token, err);
      throw err;
    }
  };
  const run = async (job: Job, cancelled?: AbortSignal) => {
    const signal = cancelled ? AbortSignal.any([closing.signal, cancelled]) : closing.signal;
    // Parsed once: null for a discovery job, which names only its source.
    const poll = job.name === DiscoverForms.name ? null : (PollForm.payload.parse(job.data) as PollFormData);
    const { sourceId } = poll ?? (DiscoverForms.payload.parse(job.data) as DiscoverFormsData);
    const s = sources.get(sourceId);
    if (!s) return drop(job, sourceId);
    const { source, connector, configPath } = s;
    // Scheduled runs only: a job someone queued by hand (a backfill) always tries.
    if (job.repeatJobKey) {
      const until = await authPausedUntil(deps.db, sourceId, backoff);
      if (until) {
        log.debug({ sourceId, jobId: job.id, until }, 'run skipped: the source refused our credentials recently');
        observeRun(metrics, { source: sourceId, form: poll?.formId ?? '*', mode: poll?.mode ?? 'discover', outcome: 'paused', startedMs: Date.now(), fetched: 0 });
        return { skipped: 'credentials refused recently', until: until.toISOString() };
      }
    }
    if (!poll) {
      // Recorded like a poll (form '*', mode 'discover'): a failing discovery is visible in the import log.
      const runId = await startRun(deps.db, sourceId, '*', 'discover', null);
      const startedMs = Date.now();
      const observe = (outcome: string) => observeRun(metrics, { source: sourceId, form: '*', mode: 'discover', outcome, startedMs, fetched: 0 });
      try {
        const forms = await connector.listForms(signal);
        await scheduleDiscoveredForms(deps.queues.poll, source, forms);
        await finishRun(deps.db, runId, { outcome: 'ok', fetched: forms.length, enqueued: 0 });
        observe('ok');
        return { forms };
      } catch (err) {
        const auth = err instanceof AuthError;
        observe(auth ? 'auth_failed' : 'failed');
        const error = auth ? err.at(configPath) : (err as Error).message;
        await finishRun(deps.db, runId, { outcome: auth ? 'auth_failed' : 'failed', fetched: 0, enqueued: 0, error }).catch((e: unknown) =>
          log.error({ err: e }, 'could not record failed SyncRun'),
        );
        // Other failures are logged by the worker's 'failed' handler, once per attempt as for polls.
        if (auth) log.error({ sourceId, mode: 'discover', error }, 'form discovery refused by the source: fix the credentials');
        throw unrecoverable(err);
      }
    }
    const { formId, mode } = poll;
    try {
      const summary = await runPoll(
        {
          db: deps.db, queues: deps.queues, log, batchSize: source.batchSize,
          ingestOptions: ingestJobOptions(deps.config.ingest),
          progressEveryMs: deps.progressEveryMs, staleAfterMs: deps.staleAfterMs, metrics,
        },
        { connector, formId, mode, signal, configPath, onProgress: (p) => void job.updateProgress({ ...p }) },
      );
      return { fetched: summary.fetched, enqueued: summary.enqueued, cursor: summary.cursor };
    } catch (err) {
      throw unrecoverable(err); // runPoll has logged it and written the SyncRun
    }
  };
  const worker = new Worker(QUEUE.poll, processor, {
    connection: createRedis(deps.settings.redisUrl, 'worker'),
    prefix: deps.settings.prefix,
    concurrency: deps.concurrency ?? 2,
    // A backfill can run for many minutes: BullMQ renews the short lock all
    // along; a killed poller's job is re-run elsewhere within ~25 s (cursors
    // move only after enqueue, so the re-run re-reads, never skips). A
    // scheduled job is never given up on; a one-off backfill after 3 re-runs.
    ...lockOptions(deps, PollForm.lockMs),
    maxStalledCount: 3,
  });
  worker.on('closing', () => closing.abort(new Error('poller shutting down')));
  worker.on('error', (err) => deps.log.error({ err }, 'poll worker error'));
  // Refused credentials were logged once, with the key to fix, where they happened.
  worker.on('failed', (job, err) => err.name !== 'UnrecoverableError' && deps.log.warn({ jobId: job?.id, name: job?.name, err: err.message }, 'poll job failed'));
  return worker;
}
