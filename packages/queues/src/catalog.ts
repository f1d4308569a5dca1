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
}

function job<S extends z.ZodType>(d: JobDef<S>): JobDef<S> {
  return d;
}

/** A batch of canonical submissions: one job = one transaction of bulk upserts. */
export const IngestBatch = job({
  queue: QUEUE.ingest,
  name: 'ingest-batch',
  payload: z.object({ submissions: z.array(CanonicalSubmission).min(1) }),
  options: {
    attempts: 8,
    backoff: { type: 'exponential', delay: 2_000, jitter: 0.5 },
    removeOnComplete: { count: 1_000, age: 24 * 3600 },
    // Failed jobs stay visible in the dashboard; their data also lives on in dead-letter.
    removeOnFail: { count: 10_000 },
  },
  timeoutMs: 120_000,
});

/** Ingest job options with the retry policy from config (`ingest.attempts`, `ingest.backoffMs`). */
export function ingestJobOptions(policy: { attempts: number; backoffMs: number }): JobsOptions {
  return { ...IngestBatch.options, attempts: policy.attempts, backoff: { type: 'exponential', delay: policy.backoffMs, jitter: 0.5 } };
}

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
