import type { Job } from 'bullmq';
import type { FieldsyncConfig } from '@fieldsync/config';
import { WebhookBodyError, readWebhookBody, webhookFormat, type WebhookReading } from '@fieldsync/connectors';
import { FormDefinition, type FormField } from '@fieldsync/model';
import type { Database } from '@fieldsync/db';
import { IngestBatch, UnparsedWebhook, ingestJobOptions, type Queues, type UnparsedWebhookData } from '@fieldsync/queues';
import type { Logger } from '@fieldsync/logger';
import type { LoaderMetrics } from '@fieldsync/metrics';
import { keepDeadLetter } from './ingest.processor.ts';

export interface UnparsedWebhookDeps {
  db: Database;
  queues: Pick<Queues, 'ingest' | 'deadLetter'>;
  log: Logger;
  /** The loader's config: its sources' parsers may understand what the ingress's did not. */
  config?: FieldsyncConfig;
  metrics?: Pick<LoaderMetrics, 'deadLetters'>;
}

/** `jobId`: the ingest job that carries the records on (GET /admin/api/jobs/:id follows it). */
export type UnparsedWebhookResult = { enqueued: number; jobId?: string } | { deadLettered: string };

/** Paths (`group/rep`) of the repeats in a stored form definition: this record's version, else the newest stored. */
async function repeatPaths(db: Database, sourceId: string, formId: string, version: unknown): Promise<string[]> {
  const rows = await db.prisma.formSchema.findMany({ where: { sourceId, formId }, orderBy: { fetchedAt: 'desc' } });
  const row = rows.find((r) => r.version === version) ?? rows[0];
  const def = row && FormDefinition.safeParse(row.definition);
  if (!def?.success) return [];
  const out: string[] = [];
  const stack: FormField[] = [...def.data.fields];
  while (stack.length) {
    const f = stack.pop()!;
    if (f.type === 'repeat') out.push(f.path.join('/'));
    if (f.children) stack.push(...f.children);
  }
  return out;
}

/**
 * Processes a webhook body kept by the ingress, read with this process's
 * config: its records go on as an ingest batch. An XML body is read with the
 * repeats of the form's stored definition, so a one-entry repeat is an array
 * as in Kobo's JSON (without a stored definition, only repeated elements
 * are). A body it cannot read (the ingress could not either; a config change
 * and a replay may fix that) is dead-lettered at once, raw body and reason
 * included: a parse failure is deterministic, so retrying is pointless.
 * Only infrastructure failures throw and are retried.
 */
export function createUnparsedWebhookProcessor(deps: UnparsedWebhookDeps) {
  return async (job: Job<UnparsedWebhookData>): Promise<UnparsedWebhookResult> => {
    const parsed = UnparsedWebhook.payload.safeParse(job.data);
    let reason: string;
    if (!parsed.success) reason = `invalid unparsed-webhook payload: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`;
    else {
      const d = parsed.data;
      const source = deps.config?.sources.find((s) => s.id === d.sourceId);
      if (!deps.config) reason = d.reason ?? 'the loader has no config to read webhook bodies with';
      else if (!source) reason = `source "${d.sourceId}" is not configured${d.reason ? ` (was: ${d.reason})` : ''}`;
      else {
        try {
          const input = { body: d.body, contentType: d.contentType };
          const receivedAt = new Date(d.receivedAt);
          let r: WebhookReading = readWebhookBody(source, input, receivedAt, d.hints);
          const first = r.submissions?.[0];
          if (first && webhookFormat(d.contentType) === 'xml') {
            let repeats: string[] = [];
            try {
              repeats = await repeatPaths(deps.db, first.sourceId, first.formId, first.data.__version__);
            } catch (err) {
              // The database is down: wait for it (a retry), except on the last attempt, where the body loads as read.
              if (job.attemptsMade + 1 < (job.opts.attempts ?? 1)) throw err;
              deps.log.warn({ jobId: job.id, err: (err as Error).message }, 'form definition unreadable; XML repeats read from the body alone');
            }
            if (repeats.length) r = readWebhookBody(source, input, receivedAt, { ...d.hints, repeatPaths: repeats });
          }
          if (r.submissions) {
            const next = await deps.queues.ingest.add(IngestBatch.name, { submissions: r.submissions }, ingestJobOptions(deps.config.ingest));
            deps.log.info({ jobId: job.id, sourceId: d.sourceId, records: r.submissions.length }, 'kept webhook body parsed; its records go to ingest');
            return { enqueued: r.submissions.length, jobId: next.id };
          }
          reason = r.unparsed;
        } catch (err) {
          if (!(err instanceof WebhookBodyError)) throw err;
          reason = err.message;
        }
      }
    }
    return { deadLettered: await deadLetterBody(deps, job, reason) };
  };
}

async function deadLetterBody(deps: UnparsedWebhookDeps, job: Job, reason: string): Promise<string> {
  const d = job.data as Partial<UnparsedWebhookData>;
  const error = `webhook body not understood: ${reason}`;
  deps.metrics?.deadLetters.inc({ source: typeof d.sourceId === 'string' ? d.sourceId.slice(0, 64) : 'unknown' });
  const deadLetterId = await keepDeadLetter(deps, job, {
    sourceId: typeof d.sourceId === 'string' ? d.sourceId.slice(0, 64) : null, formId: d.hints?.formId?.slice(0, 191) ?? null, error,
  });
  deps.log.warn({ jobId: job.id, deadLetterId, sourceId: d.sourceId, reason }, 'webhook body dead-lettered');
  return deadLetterId ?? 'queue-only';
}
