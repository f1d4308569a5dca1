import type { Database } from '@fieldsync/db';
import { sourceForms, type FieldsyncConfig } from '@fieldsync/config';
import type { Queues } from '@fieldsync/queues';
import type { CountableQueue, LastSuccess } from '@fieldsync/metrics';

/** METRICS_PORT when unset. Different per app so a loader and a poller on one host both serve. */
export const DEFAULT_METRICS_PORT = { loader: 9464, poller: 9465 } as const;

/** The queues whose depth an app reports. */
export function queueList(q: Queues): CountableQueue[] {
  return [q.poll, q.ingest, q.deadLetter, q.attachments];
}

/**
 * Each form's newest successful poll, sweep or backfill (what freshness is
 * measured from). One indexed look-up per form (sourceId, formId, startedAt
 * backwards) rather than a GROUP BY over the whole, ever-growing SyncRun
 * table; forms are the configured ones plus those with stored state
 * (discovered ODK forms).
 */
export async function lastSuccessfulRuns(db: Database, config?: FieldsyncConfig): Promise<LastSuccess[]> {
  const forms = new Map<string, { sourceId: string; formId: string }>();
  for (const s of config?.sources ?? []) {
    const listed = sourceForms(s);
    // '*' (discovered forms): those have SyncState rows, read below.
    for (const f of listed === '*' ? [] : listed) forms.set(`${s.id}\0${f}`, { sourceId: s.id, formId: f });
  }
  for (const r of await db.prisma.syncState.findMany({ select: { sourceId: true, formId: true } })) forms.set(`${r.sourceId}\0${r.formId}`, r);
  const out: LastSuccess[] = [];
  for (const { sourceId, formId } of forms.values()) {
    // A few newest: a long backfill started before a poll may have finished after it.
    const runs = await db.prisma.syncRun.findMany({
      where: { sourceId, formId, outcome: 'ok' }, orderBy: { startedAt: 'desc' }, take: 3, select: { finishedAt: true },
    });
    const last = Math.max(...runs.map((r) => r.finishedAt?.getTime() ?? 0));
    if (last > 0) out.push({ source: sourceId, form: formId, finishedAt: new Date(last) });
  }
  return out;
}
