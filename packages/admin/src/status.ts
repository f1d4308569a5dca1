/**
 * What an operator asks first: per source and form, when did it last sync,
 * did it work, what is stored, what is stuck, when does it run next. Read
 * from the import log (SyncRun), SyncState, Submission, DeadLetter and the
 * BullMQ job schedulers; shared by the status page, the admin API and the
 * `fieldsync status` terminal verb.
 */
import type { Queue } from 'bullmq';
import { sourceForms, type FieldsyncConfig, type SourceConfig } from '@fieldsync/config';
import type { Database } from '@fieldsync/db';
import { discoverSchedulerId, schedulerId, type DeadLetterData } from '@fieldsync/queues';
import type { FormStatus, SourceStatus, StatusResponse, SyncRun } from './schemas.ts';

export interface StatusDeps {
  db: Database;
  /** The poll queue (its job schedulers tell the next runs); deadLetter for queue-only dead letters. */
  queues: { poll: Queue; deadLetter?: Queue };
  config: FieldsyncConfig;
}

type RunRow = {
  id: bigint; sourceId: string; formId: string; mode: string; outcome: string;
  startedAt: Date; finishedAt: Date | null; fetched: number; enqueued: number; error: string | null;
};

export function toRun(r: RunRow): SyncRun {
  return {
    id: String(r.id),
    sourceId: r.sourceId,
    formId: r.formId,
    mode: r.mode as SyncRun['mode'],
    outcome: r.outcome as SyncRun['outcome'],
    startedAt: r.startedAt.toISOString(),
    finishedAt: r.finishedAt?.toISOString() ?? null,
    durationMs: r.finishedAt ? r.finishedAt.getTime() - r.startedAt.getTime() : null,
    fetched: r.fetched,
    enqueued: r.enqueued,
    error: r.error,
  };
}

const RUN_SELECT = { id: true, sourceId: true, formId: true, mode: true, outcome: true, startedAt: true, finishedAt: true, fetched: true, enqueued: true, error: true } as const;

/** When the job scheduler `id` runs next, or null when it has none. */
function nextAt(next: Map<string, number | undefined>, id: string): string | null {
  const n = next.get(id);
  return n ? new Date(n).toISOString() : null;
}

async function formStatus(db: Database, source: SourceConfig, formId: string, ctx: {
  rows: Map<string, { live: number; deleted: number }>;
  dead: Map<string, number>;
  next: Map<string, number | undefined>;
}): Promise<FormStatus> {
  const where = { sourceId: source.id, formId };
  const newest = (extra: object) => db.prisma.syncRun.findFirst({ where: { ...where, ...extra }, orderBy: { id: 'desc' }, select: RUN_SELECT });
  const [lastPoll, lastSweep, running, lastFinished, lastOk, state] = await Promise.all([
    newest({ mode: { in: ['poll', 'backfill'] } }),
    newest({ mode: 'sweep' }),
    newest({ outcome: 'running' }),
    // A skipped run (another was running) says nothing about health.
    newest({ outcome: { notIn: ['running', 'skipped'] } }),
    newest({ outcome: 'ok' }),
    db.prisma.syncState.findUnique({ where: { sourceId_formId: where } }),
  ]);
  const k = `${source.id}\u0000${formId}`;
  return {
    sourceId: source.id,
    formId,
    kind: source.kind,
    lastPoll: lastPoll ? toRun(lastPoll) : null,
    lastSweep: lastSweep ? toRun(lastSweep) : null,
    lastSuccessAt: lastOk?.finishedAt?.toISOString() ?? null,
    currentError: lastFinished && lastFinished.outcome !== 'ok' ? (lastFinished.error ?? lastFinished.outcome) : null,
    running: running ? toRun(running) : null,
    cursor: (state?.cursor as Record<string, unknown> | null | undefined) ?? null,
    rows: ctx.rows.get(k) ?? { live: 0, deleted: 0 },
    deadLetters: ctx.dead.get(k) ?? 0,
    nextRun: { poll: nextAt(ctx.next, schedulerId(source.id, formId, 'poll')), sweep: nextAt(ctx.next, schedulerId(source.id, formId, 'sweep')) },
  };
}

/** Status of every configured source and its forms (discovered ones included), in config order. */
export async function collectStatus(deps: StatusDeps): Promise<SourceStatus[]> {
  const { db, config } = deps;
  const [rowGroups, deadGroups, schedulers, states] = await Promise.all([
    db.prisma.submission.groupBy({ by: ['sourceId', 'formId', 'deleted'], _count: { _all: true } }),
    db.prisma.deadLetter.groupBy({ by: ['sourceId', 'formId'], where: { replayedAt: null }, _count: { _all: true } }),
    deps.queues.poll.getJobSchedulers(0, -1),
    db.prisma.syncState.findMany({ select: { sourceId: true, formId: true } }),
  ]);
  const rows = new Map<string, { live: number; deleted: number }>();
  for (const g of rowGroups) {
    const k = `${g.sourceId}\u0000${g.formId}`;
    const r = rows.get(k) ?? { live: 0, deleted: 0 };
    if (g.deleted) r.deleted += g._count._all;
    else r.live += g._count._all;
    rows.set(k, r);
  }
  const dead = new Map<string, number>();
  for (const g of deadGroups) dead.set(`${g.sourceId ?? ''}\u0000${g.formId ?? ''}`, g._count._all);
  const next = new Map(schedulers.map((s) => [s.key, s.next]));
  const ctx = { rows, dead, next };

  const out: SourceStatus[] = [];
  for (const source of config.sources) {
    let forms: string[];
    const configured = sourceForms(source);
    if (configured === '*') {
      // Discovered forms: whatever has a scheduler, a cursor or rows.
      const found = new Set<string>();
      for (const s of schedulers) for (const mode of ['poll', 'sweep']) if (s.key.startsWith(`${mode}:${source.id}:`)) found.add(s.key.slice(mode.length + source.id.length + 2));
      for (const s of states) if (s.sourceId === source.id) found.add(s.formId);
      for (const g of rowGroups) if (g.sourceId === source.id) found.add(g.formId);
      forms = [...found].sort();
    } else forms = configured;
    const formStatuses = await Promise.all(forms.map((f) => formStatus(db, source, f, ctx)));
    const lastDiscovery = await db.prisma.syncRun.findFirst({ where: { sourceId: source.id, mode: 'discover' }, orderBy: { id: 'desc' }, select: RUN_SELECT });
    const formSet = new Set(forms);
    let otherDeadLetters = 0;
    for (const g of deadGroups) if (g.sourceId === source.id && !formSet.has(g.formId ?? '')) otherDeadLetters += g._count._all;
    out.push({
      id: source.id,
      kind: source.kind,
      baseUrl: source.baseUrl,
      formsConfigured: configured,
      forms: formStatuses,
      lastDiscovery: lastDiscovery ? toRun(lastDiscovery) : null,
      nextDiscovery: nextAt(next, discoverSchedulerId(source.id)),
      otherDeadLetters,
    });
  }
  return out;
}

/** Dead letters that live only on the dead-letter queue (their table row could not be written). */
export async function queueOnlyDeadLetters(deadLetter: Queue): Promise<number> {
  const jobs = await deadLetter.getJobs(['waiting', 'delayed', 'failed', 'completed']);
  return jobs.filter((j) => j && !(j.data as DeadLetterData).deadLetterId).length;
}

/** The whole status answer of GET /admin/api/status. */
export async function statusResponse(deps: StatusDeps): Promise<StatusResponse> {
  const [sources, queueOnly] = await Promise.all([collectStatus(deps), deps.queues.deadLetter ? queueOnlyDeadLetters(deps.queues.deadLetter) : Promise.resolve(0)]);
  return { generatedAt: new Date().toISOString(), sources, queueOnlyDeadLetters: queueOnly };
}
