/**
 * The admin API's shapes: one set of zod schemas types the code, validates
 * what the router answers in tests, and generates the OpenAPI document
 * (openapi.ts). Times are ISO-8601 strings and row ids decimal strings
 * (BigInt has no JSON form), so every value here is what goes on the wire.
 */
import { z } from 'zod';

const Time = z.iso.datetime({ offset: true });
const Id = z.string().regex(/^\d+$/).describe('row id (a decimal string: ids are 64-bit)');

export const RunOutcome = z.enum(['running', 'ok', 'failed', 'skipped', 'interrupted', 'auth_failed']).meta({ id: 'RunOutcome' });
export const RunMode = z.enum(['poll', 'sweep', 'backfill', 'discover']).meta({ id: 'RunMode' });

/** One row of the import log (SyncRun). */
export const SyncRun = z
  .object({
    id: Id,
    sourceId: z.string(),
    formId: z.string().describe("'*' for a form discovery"),
    mode: RunMode,
    outcome: RunOutcome,
    startedAt: Time,
    finishedAt: Time.nullable(),
    durationMs: z.number().int().nullable().describe('null while running'),
    fetched: z.number().int(),
    enqueued: z.number().int().describe('records handed to the loader'),
    error: z.string().nullable(),
  })
  .meta({ id: 'SyncRun' });
export type SyncRun = z.infer<typeof SyncRun>;

export const FormStatus = z
  .object({
    sourceId: z.string(),
    formId: z.string(),
    kind: z.enum(['kobo', 'odk', 'rest', 'socrata']),
    /** Newest poll (or backfill: both advance the cursor). */
    lastPoll: SyncRun.nullable(),
    lastSweep: SyncRun.nullable(),
    /** Newest run of any mode that finished ok. */
    lastSuccessAt: Time.nullable(),
    /** The error of the newest finished run when it did not end ok; null when it did. */
    currentError: z.string().nullable(),
    running: SyncRun.nullable().describe('a run in progress, if any'),
    cursor: z.record(z.string(), z.unknown()).nullable(),
    rows: z.object({ live: z.number().int(), deleted: z.number().int() }),
    /** Dead letters of this form not yet replayed. */
    deadLetters: z.number().int(),
    nextRun: z.object({ poll: Time.nullable(), sweep: Time.nullable() }).describe('from the BullMQ job schedulers; null when none is registered'),
  })
  .meta({ id: 'FormStatus' });
export type FormStatus = z.infer<typeof FormStatus>;

export const SourceStatus = z
  .object({
    id: z.string(),
    kind: z.enum(['kobo', 'odk', 'rest', 'socrata']),
    baseUrl: z.string(),
    /** Configured forms, or "*" when the forms are discovered from the project. */
    formsConfigured: z.union([z.array(z.string()), z.literal('*')]),
    forms: z.array(FormStatus),
    /** The newest discovery run (sources with forms "*"). */
    lastDiscovery: SyncRun.nullable(),
    nextDiscovery: Time.nullable(),
    /** Dead letters of this source not tied to one form (e.g. an unreadable webhook body). */
    otherDeadLetters: z.number().int(),
  })
  .meta({ id: 'SourceStatus' });
export type SourceStatus = z.infer<typeof SourceStatus>;

export const StatusResponse = z
  .object({
    generatedAt: Time,
    sources: z.array(SourceStatus),
    /** Dead letters only on the dead-letter queue: their table row could not be written (the database was down). */
    queueOnlyDeadLetters: z.number().int(),
  })
  .meta({ id: 'StatusResponse' });
export type StatusResponse = z.infer<typeof StatusResponse>;

export const DeadLetterSummary = z
  .object({
    id: Id,
    queue: z.string(),
    jobName: z.string(),
    jobId: z.string().nullable(),
    sourceId: z.string().nullable(),
    formId: z.string().nullable(),
    error: z.string(),
    attempts: z.number().int(),
    failedAt: Time,
    replayedAt: Time.nullable(),
    /** How many records the payload holds (a kept webhook body counts 1). */
    records: z.number().int(),
  })
  .meta({ id: 'DeadLetterSummary' });
export type DeadLetterSummary = z.infer<typeof DeadLetterSummary>;

export const DeadLetterDetail = DeadLetterSummary.extend({ payload: z.unknown().describe('the job data exactly as it failed') }).meta({ id: 'DeadLetterDetail' });
export type DeadLetterDetail = z.infer<typeof DeadLetterDetail>;

export const Page = <T extends z.ZodType>(item: T, id: string) =>
  z.object({ items: z.array(item), total: z.number().int(), limit: z.number().int(), offset: z.number().int() }).meta({ id });

export const RunsPage = Page(SyncRun, 'RunsPage');
export const DeadLettersPage = Page(DeadLetterSummary, 'DeadLettersPage');

export const RunsQuery = z.object({
  sourceId: z.string().optional(),
  formId: z.string().optional(),
  mode: RunMode.optional(),
  outcome: RunOutcome.optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  offset: z.coerce.number().int().min(0).default(0),
});
export const DeadLettersQuery = z.object({
  sourceId: z.string().optional(),
  formId: z.string().optional(),
  /** Include dead letters already replayed. */
  replayed: z.enum(['true', 'false']).default('false').describe('"true" also lists replayed ones'),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  offset: z.coerce.number().int().min(0).default(0),
});

export const TriggerRequest = z
  .object({ mode: z.enum(['poll', 'sweep', 'backfill']).default('poll').describe('backfill re-reads the whole form from the start') })
  .meta({ id: 'TriggerRequest' });
export const TriggerResponse = z
  .object({ jobId: z.string(), sourceId: z.string(), formId: z.string(), mode: z.enum(['poll', 'sweep', 'backfill']) })
  .meta({ id: 'TriggerResponse' });

export const ReplayRequest = z
  .object({ ids: z.array(Id).min(1).optional().describe('omit to replay every dead letter not yet replayed (queue-only ones too)') })
  .meta({ id: 'ReplayRequest' });
export const ReplayResponse = z.object({ replayed: z.number().int().describe('records (and webhook bodies) re-enqueued') }).meta({ id: 'ReplayResponse' });

export const JobState = z.enum(['completed', 'failed', 'active', 'waiting', 'delayed', 'prioritized', 'waiting-children', 'unknown']);
export const JobStatus = z
  .object({
    id: z.string(),
    queue: z.string(),
    name: z.string(),
    state: JobState,
    /** True once the loader committed the job's records (state completed). */
    stored: z.boolean(),
    attemptsMade: z.number().int(),
    failedReason: z.string().nullable(),
    finishedAt: Time.nullable(),
  })
  .meta({ id: 'JobStatus' });
export type JobStatus = z.infer<typeof JobStatus>;

export const ApiError = z.object({ error: z.string(), message: z.string() }).meta({ id: 'Error' });

export const WebhookAccepted = z
  .object({
    accepted: z.number().int().describe('records read from the body (0 when kept unparsed)'),
    jobId: z.string().describe('ask GET /admin/api/jobs/{jobId} whether they are stored'),
    keys: z.array(z.string()).optional(),
    kept: z.boolean().optional().describe('true: not understood, kept whole for the loader to dead-letter'),
    reason: z.string().optional(),
  })
  .meta({ id: 'WebhookAccepted' });
