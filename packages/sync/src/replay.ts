import type { Database } from '@fieldsync/db';
import { markDeadLetterReplayed } from '@fieldsync/db';
import { IngestBatch, type Queues } from '@fieldsync/queues';
import type { CanonicalSubmission } from '@fieldsync/model';

/**
 * Sends dead-lettered batches back through ingest (after a fix), marked
 * `via: replay`, and stamps their DeadLetter rows as replayed.
 */
export async function replayDeadLetters(db: Database, queues: Pick<Queues, 'ingest'>, opts: { ids?: bigint[] } = {}): Promise<number> {
  const rows = await db.prisma.deadLetter.findMany({
    where: { replayedAt: null, ...(opts.ids ? { id: { in: opts.ids } } : {}) },
    orderBy: { id: 'asc' },
  });
  let n = 0;
  for (const row of rows) {
    const payload = JSON.parse(row.payload) as { submissions?: CanonicalSubmission[] };
    const submissions = (payload.submissions ?? []).map((s) => ({ ...s, via: 'replay' as const }));
    if (submissions.length) {
      await queues.ingest.add(IngestBatch.name, { submissions }, IngestBatch.options);
      n += submissions.length;
    }
    await markDeadLetterReplayed(db, row.id);
  }
  return n;
}
