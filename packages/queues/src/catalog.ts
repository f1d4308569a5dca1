/**
 * The job catalog: every queue, job name, payload schema and retry policy in
 * one place. Producers and workers import from here and nowhere else.
 */
import { z } from 'zod';
import type { JobsOptions } from 'bullmq';
import { CanonicalSubmission } from '@fieldsync/model';

export const QUEUE = {
  poll: 'poll',
  ingest: 'ingest',
  deadLetter: 'dead-letter',
  /** Media files copied to storage: their own queue, so slow downloads never delay the data. */
  attachments: 'attachments',
} as const;
export type QueueName = (typeof QUEUE)[keyof typeof QUEUE];

export interface JobDef<S extends z.ZodType> {
  queue: QueueName;
  name: string;
  payload: S;
  /** Defaults for every job of this kind; callers may override attempts/backoff from config. */
  options: JobsOptions;
  /** How long one attempt may run before it counts as failed. */
  timeoutMs: number;
  /**
   * How long a worker's lock on a running job lasts; not how long the job may
   * run. The worker renews it every lockMs/2 for as long as the attempt runs,
   * so it lapses only when the worker is gone (kill -9, a hang); the stall
   * check then hands the job to another worker within lockMs + STALL_CHECK_MS.
   * Workers consuming one queue use that queue's jobs' lockMs (they agree).
   */
  lockMs: number;
}

/**
 * Job locks and the stall check that finds lapsed ones: a job whose worker
 * died is running again elsewhere after at most LOCK_MS + STALL_CHECK_MS
 * (25 s). A worker's event loop may stall up to ~LOCK_MS/2 without its jobs
 * being taken from it.
 */
export const LOCK_MS = 20_000;
export const STALL_CHECK_MS = 5_000;

function job<S extends z.ZodType>(d: Omit<JobDef<S>, 'lockMs'> & { lockMs?: number }): JobDef<S> {
  return { ...d, lockMs: d.lockMs ?? LOCK_MS };
}

/** A batch of canonical submissions: one job = one transaction of bulk upserts. */
export const IngestBatch = job({
  queue: QUEUE.ingest,
  name: 'ingest-batch',
  payload: z.object({
    submissions: z.array(CanonicalSubmission).min(1),
    /** The SyncRun (id as decimal text) of the poll/sweep/backfill that enqueued it; webhook batches have none. */
    runId: z.string().regex(/^\d+$/).optional(),
    /**
     * Keys of this job's records that an earlier attempt committed; the job then holds
     * only the records the database refused (what a shared webhook job's status reads).
     */
    storedKeys: z.array(z.string()).optional(),
  }),
  options: {
    attempts: 8,
    backoff: { type: 'exponential', delay: 2_000, jitter: 0.5 },
    // A completed job keeps its records in Redis (the dashboard and the job-status API read them):
    // 500 jobs of up to 1,000 records (batchSize) and ~4 MB (the poll runner's recordsPerJob)
    // bound that: ~750 MB of 1.5-kB records, 2 GB at the very worst.
    removeOnComplete: { count: 500, age: 24 * 3600 },
    // Failed jobs stay visible in the dashboard; their data also lives on in dead-letter.
    removeOnFail: { count: 10_000 },
  },
  timeoutMs: 120_000,
});

/**
 * Webhook batches that arrived together, as one job (JobBatcher's `combine`):
 * one job per burst instead of one per request, so Redis, the ingress and the
 * loader pay the per-job cost once. Webhook batches carry no runId.
 */
export function combineIngestBatches(datas: unknown[]): IngestBatchData {
  return { submissions: (datas as IngestBatchData[]).flatMap((d) => d.submissions) };
}

/** Ingest job options with the retry policy from config (`ingest.attempts`, `ingest.backoffMs`). */
export function ingestJobOptions(policy: { attempts: number; backoffMs: number }): JobsOptions {
  return { ...IngestBatch.options, attempts: policy.attempts, backoff: { type: 'exponential', delay: policy.backoffMs, jitter: 0.5 } };
}

/**
 * An authenticated webhook body kept whole for the loader to read: one that no
 * parser understood when it arrived (`reason`), or an XML body (the loader
 * knows the form's repeats from its stored definition; the ingress never
 * touches the database). The loader reads it with its config: records go on
 * as an ingest batch; a body it cannot read either is dead-lettered at once
 * (a parse failure is deterministic), to load after a config change and a
 * replay. On the ingest queue so one worker serves both.
 */
export const UnparsedWebhook = job({
  queue: QUEUE.ingest,
  name: 'unparsed-webhook',
  payload: z.object({
    sourceId: z.string(),
    contentType: z.string(),
    /** The raw body, exactly as received (UTF-8). */
    body: z.string(),
    /** Why it was not understood on arrival; absent when it was (an XML body). */
    reason: z.string().optional(),
    receivedAt: z.iso.datetime({ offset: true }),
    hints: z.object({ formId: z.string().optional() }).default({}),
  }),
  options: IngestBatch.options,
  timeoutMs: 60_000,
});
export type UnparsedWebhookData = z.infer<typeof UnparsedWebhook.payload>;

/** Page a source for one form: incremental poll, edit/delete sweep, or full backfill. */
export const PollForm = job({
  queue: QUEUE.poll,
  name: 'poll-form',
  payload: z.object({
    sourceId: z.string(),
    formId: z.string(),
    mode: z.enum(['poll', 'sweep', 'backfill']),
  }),
  options: {
    attempts: 3,
    backoff: { type: 'exponential', delay: 10_000, jitter: 0.5 },
    removeOnComplete: { count: 500 },
    removeOnFail: { count: 1_000 },
  },
  timeoutMs: 3_600_000,
});

/** List a source's forms and schedule any new ones ("every form of project N"). */
export const DiscoverForms = job({
  queue: QUEUE.poll,
  name: 'discover-forms',
  payload: z.object({ sourceId: z.string() }),
  options: { attempts: 3, backoff: { type: 'exponential', delay: 10_000, jitter: 0.5 }, removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } },
  timeoutMs: 300_000,
});

/**
 * One attachment file to copy to storage (Kobo: its `download_url`; ODK: the
 * attachment's path under the submission). One job per file, so a file that
 * keeps failing is dead-lettered alone.
 */
export const AttachmentFile = job({
  queue: QUEUE.attachments,
  name: 'attachment-file',
  payload: z.object({
    sourceId: z.string(),
    formId: z.string(),
    /** The record's key (Kobo `_id`, ODK `__id`). */
    key: z.string(),
    /** The file name as the record's answer holds it. */
    name: z.string().min(1),
    /** Absolute URL to download from. */
    url: z.url(),
    questionPath: z.string().nullable().default(null),
    mimeType: z.string().nullable().default(null),
  }),
  options: {
    attempts: 5,
    backoff: { type: 'exponential', delay: 5_000, jitter: 0.5 },
    removeOnComplete: { count: 1_000, age: 24 * 3600 },
    removeOnFail: { count: 10_000 },
  },
  timeoutMs: 600_000,
});

/**
 * ODK: list one submission's attachments and enqueue a file job for each that
 * is uploaded and not yet stored. Retried (with backoff) while Central says
 * fewer are present than expected.
 */
export const AttachmentList = job({
  queue: QUEUE.attachments,
  name: 'attachment-list',
  payload: z.object({
    sourceId: z.string(),
    formId: z.string(),
    key: z.string(),
  }),
  options: {
    attempts: 8,
    backoff: { type: 'exponential', delay: 30_000, jitter: 0.5 },
    removeOnComplete: { count: 1_000, age: 24 * 3600 },
    removeOnFail: { count: 10_000 },
  },
  timeoutMs: 60_000,
});
export type AttachmentFileData = z.infer<typeof AttachmentFile.payload>;
export type AttachmentListData = z.infer<typeof AttachmentList.payload>;

/** An ingest job whose attempts are spent: kept for operators to inspect and replay. */
export const DeadLetter = job({
  queue: QUEUE.deadLetter,
  name: 'dead-letter',
  payload: z.object({
    queue: z.string(),
    jobName: z.string(),
    jobId: z.string().optional(),
    data: z.unknown(),
    error: z.string(),
    attemptsMade: z.number().int(),
    failedAt: z.string(),
    /** Row id in the DeadLetter table. */
    deadLetterId: z.string().optional(),
  }),
  options: { removeOnComplete: false, removeOnFail: false },
  timeoutMs: 60_000,
});

export type IngestBatchData = z.infer<typeof IngestBatch.payload>;
export type PollFormData = z.infer<typeof PollForm.payload>;
export type DiscoverFormsData = z.infer<typeof DiscoverForms.payload>;
export type DeadLetterData = z.infer<typeof DeadLetter.payload>;

/** Scheduler ids: one per (source, form, mode), stable so upserts replace rather than add. */
export function schedulerId(sourceId: string, formId: string, mode: 'poll' | 'sweep'): string {
  return `${mode}:${sourceId}:${formId}`;
}
export function discoverSchedulerId(sourceId: string): string {
  return `discover:${sourceId}`;
}
