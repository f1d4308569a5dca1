import type { Database } from './database.ts';

export type Cursor = Record<string, unknown>;

export async function loadCursor(db: Database, sourceId: string, formId: string): Promise<Cursor | null> {
  const row = await db.prisma.syncState.findUnique({ where: { sourceId_formId: { sourceId, formId } } });
  return (row?.cursor as Cursor | null | undefined) ?? null;
}

/** Stores the cursor; callers do this only after the batches it covers are enqueued. */
export async function saveCursor(db: Database, sourceId: string, formId: string, cursor: Cursor): Promise<void> {
  const now = new Date();
  await db.prisma.syncState.upsert({
    where: { sourceId_formId: { sourceId, formId } },
    create: { sourceId, formId, cursor: cursor as object, lastRunAt: now, updatedAt: now },
    update: { cursor: cursor as object, lastRunAt: now, updatedAt: now },
  });
}

/** Forgets the cursor so the next poll starts from the beginning (backfill). */
export async function resetCursor(db: Database, sourceId: string, formId: string): Promise<void> {
  await db.prisma.syncState.deleteMany({ where: { sourceId, formId } });
}

export type RunMode = 'poll' | 'sweep' | 'backfill';
export type RunOutcome = 'running' | 'ok' | 'failed' | 'skipped';

export async function startRun(db: Database, sourceId: string, formId: string, mode: RunMode, cursorFrom: Cursor | null): Promise<bigint> {
  const row = await db.prisma.syncRun.create({
    data: { sourceId, formId, mode, startedAt: new Date(), outcome: "running", cursorFrom: (cursorFrom ?? undefined) as object | undefined },
  });
  return row.id;
}

export async function finishRun(
  db: Database,
  id: bigint,
  result: { outcome: Exclude<RunOutcome, 'running'>; fetched: number; enqueued: number; cursorTo?: Cursor | null; error?: string },
): Promise<void> {
  await db.prisma.syncRun.update({
    where: { id },
    data: {
      finishedAt: new Date(),
      outcome: result.outcome,
      fetched: result.fetched,
      enqueued: result.enqueued,
      cursorTo: (result.cursorTo ?? undefined) as object | undefined,
      error: result.error?.slice(0, 10_000),
    },
  });
}
