/** The admin operations behind both the JSON API and the status page. */
import type { Job } from 'bullmq';
import { sourceForms, type FieldsyncConfig } from '@fieldsync/config';
import { decodeDeadLetterPayload, type Database } from '@fieldsync/db';
import { PollForm, type Queues } from '@fieldsync/queues';
import { replayDeadLetters } from '@fieldsync/sync';
import type { z } from 'zod';
import { toRun } from './status.ts';
import type { DeadLetterDetail, DeadLetterSummary, DeadLettersQuery, JobStatus, RunsQuery, SyncRun } from './schemas.ts';

/** An error the API answers with its own status (not a 500). */
export class AdminError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export async function listRuns(db: Database, q: z.infer<typeof RunsQuery>): Promise<{ items: SyncRun[]; total: number; limit: number; offset: number }> {
  const where = { sourceId: q.sourceId, formId: q.formId, mode: q.mode, outcome: q.outcome };
  const [rows, total] = await Promise.all([
    db.prisma.syncRun.findMany({ where, orderBy: { id: 'desc' }, take: q.limit, skip: q.offset }),
    db.prisma.syncRun.count({ where }),
  ]);
  return { items: rows.map(toRun), total, limit: q.limit, offset: q.offset };
}

type DeadRow = Awaited<ReturnType<Database['prisma']['deadLetter']['findFirstOrThrow']>>;

function summary(r: DeadRow, payload: unknown): DeadLetterSummary {
  const subs = (payload as { submissions?: unknown[] } | null)?.submissions;
  return {
    id: String(r.id), queue: r.queue, jobName: r.jobName, jobId: r.jobId, sourceId: r.sourceId, formId: r.formId,
    error: r.error, attempts: r.attempts, failedAt: r.failedAt.toISOString(), replayedAt: r.replayedAt?.toISOString() ?? null,
    records: Array.isArray(subs) ? subs.length : 1,
  };
}

function decode(text: string): unknown {
  try {
    return decodeDeadLetterPayload(text);
  } catch {
    return text; // not JSON after all: shown as the text it is
  }
}

export async function listDeadLetters(db: Database, q: z.infer<typeof DeadLettersQuery>) {
  const where = { sourceId: q.sourceId, formId: q.formId, ...(q.replayed === 'true' ? {} : { replayedAt: null }) };
  const [rows, total] = await Promise.all([
    db.prisma.deadLetter.findMany({ where, orderBy: { id: 'desc' }, take: q.limit, skip: q.offset }),
    db.prisma.deadLetter.count({ where }),
  ]);
  return { items: rows.map((r) => summary(r, decode(r.payload))), total, limit: q.limit, offset: q.offset };
}

export function parseId(id: string): bigint {
  if (!/^\d{1,19}$/.test(id)) throw new AdminError(400, 'bad_id', `"${id}" is not a row id`);
  return BigInt(id);
}

export async function getDeadLetter(db: Database, id: string): Promise<DeadLetterDetail> {
  const row = await db.prisma.deadLetter.findUnique({ where: { id: parseId(id) } });
  if (!row) throw new AdminError(404, 'not_found', `no dead letter ${id}`);
  const payload = decode(row.payload);
  return { ...summary(row, payload), payload };
}

/** Queues a poll, sweep or backfill of one form now (the poller picks it up like a scheduled one). */
export async function triggerSync(queues: Pick<Queues, 'poll'>, config: FieldsyncConfig, sourceId: string, formId: string, mode: 'poll' | 'sweep' | 'backfill') {
  const source = config.sources.find((s) => s.id === sourceId);
  if (!source) throw new AdminError(404, 'unknown_source', `no source "${sourceId}" is configured`);
  const configured = sourceForms(source);
  if (configured !== '*' && !configured.includes(formId)) throw new AdminError(404, 'unknown_form', `source "${sourceId}" does not sync form "${formId}"`);
  const job = await queues.poll.add(PollForm.name, PollForm.payload.parse({ sourceId, formId, mode }), PollForm.options);
  return { jobId: String(job.id), sourceId, formId, mode };
}

export async function replay(db: Database, queues: Pick<Queues, 'ingest' | 'deadLetter' | 'attachments'>, config: FieldsyncConfig, ids?: string[]) {
  return { replayed: await replayDeadLetters(db, queues, { ids: ids?.map(parseId), ingest: config.ingest }) };
}

const QUEUE_KEYS = { ingest: 'ingest', poll: 'poll', 'dead-letter': 'deadLetter' } as const;

/**
 * Where a job is: for a webhook's job (on `ingest`), `stored` says its records
 * are committed. A kept (XML) body's job hands its records on to a follow-up
 * job: when its result names that job (`jobId`), the answer follows it.
 * With `key`, the answer is for that record of the job (requests for one form
 * share a job): stored once its job completed, or once an attempt committed it
 * while the database refused another record of the job.
 */
export async function jobStatus(queues: Queues, id: string, queueName = 'ingest', recordKey?: string): Promise<JobStatus> {
  const key = QUEUE_KEYS[queueName as keyof typeof QUEUE_KEYS];
  if (!key) throw new AdminError(400, 'unknown_queue', `queue must be one of ${Object.keys(QUEUE_KEYS).join(', ')}`);
  const queue = queues[key];
  let job: Job | undefined = await queue.getJob(id);
  if (!job) throw new AdminError(404, 'not_found', `no job ${id} on ${queueName} (unknown, or removed after completion)`);
  for (let hops = 0; hops < 3; hops++) {
    const next = (job.returnvalue as { jobId?: unknown } | null)?.jobId;
    if (typeof next !== 'string' || !job.finishedOn) break;
    const follow = await queue.getJob(next);
    if (!follow) break;
    job = follow;
  }
  const state = (await job.getState()) as JobStatus['state'];
  const deadLettered = (job.returnvalue as { deadLettered?: unknown } | null)?.deadLettered;
  const done = state === 'completed' && deadLettered === undefined && job.name !== 'unparsed-webhook';
  let stored = done;
  if (recordKey !== undefined) {
    const data = job.data as { submissions?: { key?: unknown }[]; storedKeys?: unknown };
    const committed = Array.isArray(data.storedKeys) && data.storedKeys.includes(recordKey);
    const held = committed || (data.submissions ?? []).some((s) => s?.key === recordKey);
    // Asked of an unparsed body's job, the key is in no job yet: the answer is the job's own.
    if (!held && job.name !== 'unparsed-webhook') throw new AdminError(404, 'not_found', `job ${id} holds no record with key ${recordKey}`);
    stored = done || committed;
  }
  return {
    id: String(job.id),
    queue: queueName,
    name: job.name,
    state,
    stored,
    attemptsMade: job.attemptsMade,
    failedReason: job.failedReason ?? (typeof deadLettered === 'string' ? `dead-lettered (${deadLettered})` : null),
    finishedAt: job.finishedOn ? new Date(job.finishedOn).toISOString() : null,
  };
}
