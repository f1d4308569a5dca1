import type { CanonicalSubmission } from '@fieldsync/model';
import { PayloadError, type WebhookHints } from '../connector.ts';
import { toCanonical } from './kobo.canonical.ts';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function one(sourceId: string, record: unknown, receivedAt: Date, hints: WebhookHints): CanonicalSubmission {
  if (!isObject(record)) throw new PayloadError('body must be a JSON object (a Kobo record) or an array of records');
  const own = record._xform_id_string;
  if (own !== undefined && (typeof own !== 'string' || own === '')) throw new PayloadError('"_xform_id_string" must be a non-empty string');
  // A project-level field subset can drop the asset uid; the webhook URL can then name it.
  if (own && hints.formId && own !== hints.formId) throw new PayloadError(`"_xform_id_string" is "${own}" but ?formId= says "${hints.formId}"`);
  const formId = own || hints.formId;
  if (!formId) throw new PayloadError('missing "_xform_id_string" (or pass ?formId=)');
  return toCanonical(record, { sourceId, formId, observedAt: receivedAt, via: 'webhook' });
}

/**
 * A Kobo REST Service body: the bare record, exactly as in the data API (an
 * array of records is accepted too). Kobo signs nothing and retries only on
 * 502/503/504, so anything unusable is refused with a PayloadError naming the
 * problem (and, for an array, the record's index).
 */
export function parseKoboWebhook(sourceId: string, body: unknown, receivedAt: Date, hints: WebhookHints = {}): CanonicalSubmission[] {
  if (!Array.isArray(body)) return [one(sourceId, body, receivedAt, hints)];
  if (body.length === 0) throw new PayloadError('body is an empty array: expected a Kobo record');
  return body.map((r, i) => {
    if (!isObject(r)) throw new PayloadError(`record ${i} must be a JSON object`);
    try {
      return one(sourceId, r, receivedAt, hints);
    } catch (e) {
      if (e instanceof PayloadError) throw new PayloadError(`record ${i}: ${e.message}`);
      throw e;
    }
  });
}
