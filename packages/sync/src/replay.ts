import type { Database } from '@fieldsync/db';
import { markDeadLetterReplayed } from '@fieldsync/db';
import { IngestBatch, type DeadLetterData, type Queues } from '@fieldsync/queues';
import type { CanonicalSubmission } from '@fieldsync/model';

/**
 * Sends dead-lettered batches back through ingest (after a fix), marked
 * `via: replay`, stamps their DeadLetter rows as replayed and takes their
 * copies off the dead-letter queue, so the dashboard shows only what is left.
 * Without `ids`, also replays queue-only dead letters (no table row).
 */
export async function replayDeadLetters(db: Database, queues: Pick<Queues, 'ingest' | 'deadLetter'>, opts: { ids?: bigint[] } = {}): Promise<number> {
  const rows = await db.prisma.deadLetter.findMany({
    where: { replayedAt: null, ...(opts.ids ? { id: { in: opts.ids } } : {}) },
    orderBy: { id: 'asc' },
  });
  const queued = await queues.deadLetter.getJobs(['waiting', 'delayed', 'failed', 'completed']);
  let n = 0;
  for (const row of rows) {
    const payload = JSON.parse(row.payload) as { submissions?: CanonicalSubmission[] };
    const submissions = (payload.submissions ?? []).map((s) => ({ ...s, via: 'replay' as const }));
    if (submissions.length) {
      await queues.ingest.add(IngestBatch.name, { submissions }, IngestBatch.options);
      n += submissions.length;
    }
    await markDeadLetterReplayed(db, row.id);
    for (const job of queued) if ((job.data as DeadLetterData).deadLetterId === String(row.id)) await job.remove();
  }
  // Dead letters whose table row could not be written (the database was down then) live only in the queue.
  if (!opts.ids) {
    for (const job of queued) {
      const d = job.data as DeadLetterData;
      if (d.deadLetterId) continue;
      const submissions = ((d.data as { submissions?: CanonicalSubmission[] } | undefined)?.submissions ?? []).map((s) => ({ ...s, via: 'replay' as const }));
      if (submissions.length) {
        await queues.ingest.add(IngestBatch.name, { submissions }, IngestBatch.options);
        n += submissions.length;
      }
      await job.remove();
    }
  }
  return n;
}
