import type { Database } from './database.ts';

export interface DeadLetterInput {
  queue: string;
  jobName: string;
  jobId?: string | null;
  sourceId?: string | null;
  formId?: string | null;
  payload: unknown;
  error: string;
  attempts: number;
}

export async function recordDeadLetter(db: Database, d: DeadLetterInput): Promise<bigint> {
  const row = await db.prisma.deadLetter.create({
    data: {
      queue: d.queue,
      jobName: d.jobName,
      jobId: d.jobId ?? null,
      sourceId: d.sourceId ?? null,
      formId: d.formId ?? null,
      payload: JSON.stringify(d.payload),
      error: d.error.slice(0, 10_000),
      attempts: d.attempts,
      failedAt: new Date(),
    },
  });
  return row.id;
}

export async function markDeadLetterReplayed(db: Database, id: bigint): Promise<void> {
  await db.prisma.deadLetter.update({ where: { id }, data: { replayedAt: new Date() } });
}
