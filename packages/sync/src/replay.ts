import type { Database } from '@fieldsync/db';
import { decodeDeadLetterPayload, markDeadLetterReplayed } from '@fieldsync/db';
import { AttachmentFile, AttachmentList, IngestBatch, UnparsedWebhook, ingestJobOptions, type DeadLetterData, type Queues } from '@fieldsync/queues';
import type { CanonicalSubmission } from '@fieldsync/model';

export interface ReplayOptions {
  ids?: bigint[];
  /** The retry policy replayed jobs get (config `ingest`); default the catalog's. */
  ingest?: { attempts: number; backoffMs: number };
}

/**
 * Sends dead letters back through ingest (after a fix), stamps their
 * DeadLetter rows as replayed and takes their copies off the dead-letter
 * queue, so the dashboard shows only what is left. Batches come back marked
 * `via: replay`; a kept webhook body comes back whole, to be read again with
 * the loader's current config. Replayed jobs get the configured retry policy.
 * Without `ids`, also replays queue-only dead letters (no table row).
 * Returns the number of records (and webhook bodies, attachment files) re-enqueued.
 */
export async function replayDeadLetters(db: Database, queues: Pick<Queues, 'ingest' | 'deadLetter' | 'attachments'>, opts: ReplayOptions = {}): Promise<number> {
  const jobOptions = opts.ingest ? ingestJobOptions(opts.ingest) : IngestBatch.options;
  const rows = await db.prisma.deadLetter.findMany({
    where: { replayedAt: null, ...(opts.ids ? { id: { in: opts.ids } } : {}) },
    orderBy: { id: 'asc' },
  });
  const queued = await queues.deadLetter.getJobs(['waiting', 'delayed', 'failed', 'completed']);
  // Jobs that go back whole, one each: a file (or an ODK listing) on the attachment queue, alone
  // (no job id, so the failed original does not absorb it); a kept webhook body on ingest.
  const whole = [
    { def: AttachmentFile, queue: queues.attachments, options: AttachmentFile.options },
    { def: AttachmentList, queue: queues.attachments, options: AttachmentList.options },
    { def: UnparsedWebhook, queue: queues.ingest, options: jobOptions },
  ];
  const resend = async (jobName: string, data: unknown): Promise<number> => {
    const w = whole.find((k) => k.def.name === jobName);
    if (w) {
      const body = w.def.payload.safeParse(data);
      if (!body.success) return 0;
      await w.queue.add(w.def.name, body.data, w.options);
      return 1;
    }
    const submissions = ((data as { submissions?: CanonicalSubmission[] } | undefined)?.submissions ?? []).map((s) => ({ ...s, via: 'replay' as const }));
    if (submissions.length) await queues.ingest.add(IngestBatch.name, { submissions }, jobOptions);
    return submissions.length;
  };
  let n = 0;
  for (const row of rows) {
    n += await resend(row.jobName, decodeDeadLetterPayload(row.payload));
    await markDeadLetterReplayed(db, row.id);
    for (const job of queued) if ((job.data as DeadLetterData).deadLetterId === String(row.id)) await job.remove();
  }
  // Dead letters whose table row could not be written (the database was down then) live only in the queue.
  if (!opts.ids) {
    for (const job of queued) {
      const d = job.data as DeadLetterData;
      if (d.deadLetterId) continue;
      n += await resend(d.jobName, d.data);
      await job.remove();
    }
  }
  return n;
}
