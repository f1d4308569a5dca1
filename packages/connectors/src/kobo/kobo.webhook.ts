import type { CanonicalSubmission } from '@fieldsync/model';
import { PayloadError, type WebhookHints } from '../connector.ts';
import { toCanonical } from './kobo.canonical.ts';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Keys only a Kobo record (data API / REST Service JSON) carries; one is enough to recognise it. */
const RECORD_MARKERS = ['meta/instanceID', '_uuid', 'meta/rootUuid', '_xform_id_string', 'formhub/uuid', '_submission_time'];
export const looksLikeKoboRecord = (v: unknown): v is Record<string, unknown> => isObject(v) && RECORD_MARKERS.some((k) => Object.hasOwn(v, k));

function one(sourceId: string, record: unknown, receivedAt: Date, hints: WebhookHints): CanonicalSubmission {
  if (!isObject(record)) throw new PayloadError('body must be a JSON object (a Kobo record) or an array of records');
  const own = record._xform_id_string;
  if (own !== undefined && (typeof own !== 'string' || own === '')) throw new PayloadError('"_xform_id_string" must be a non-empty string');
  // A project-level field subset can drop the asset uid; the webhook URL can then name it.
  if (own && hints.formId && own !== hints.formId) throw new PayloadError(`"_xform_id_string" is "${own}" but ?formId= says "${hints.formId}"`);
  const formId = own || hints.formId;
  if (!formId) throw new PayloadError('missing "_xform_id_string" (or pass ?formId=)');
  const s = toCanonical(record, { sourceId, formId, observedAt: receivedAt, via: 'webhook' });
  // Keep the record object as received: every key, `__proto__` included.
  return { ...s, data: record };
}

/**
 * A REST Service with a `payload_template` (`{"source": "x", "submission": %SUBMISSION%}`)
 * wraps the record. `recordPath` names where it is; without one, the record is
 * found when exactly one object among the body's values (two levels down at
 * most) looks like a Kobo record. Iterative, so a hostile body costs no stack.
 */
export function unwrapKoboRecord(body: unknown, recordPath?: string): unknown {
  if (recordPath) {
    let v: unknown = body;
    for (const k of recordPath.split('.')) {
      if (!isObject(v) || !Object.hasOwn(v, k)) throw new PayloadError(`webhook.recordPath "${recordPath}": the body has no "${k}" there`);
      v = v[k];
    }
    return v;
  }
  if (!isObject(body) || looksLikeKoboRecord(body)) return body;
  const found: [string[], unknown][] = [];
  let level: [string[], Record<string, unknown>][] = [[[], body]];
  for (let depth = 0; depth < 2; depth++) {
    const next: [string[], Record<string, unknown>][] = [];
    for (const [path, obj] of level) {
      for (const [k, v] of Object.entries(obj)) {
        if (looksLikeKoboRecord(v) || (Array.isArray(v) && v.length > 0 && v.every(looksLikeKoboRecord))) found.push([[...path, k], v]);
        else if (isObject(v)) next.push([[...path, k], v]);
      }
    }
    level = next;
  }
  if (found.length > 1) throw new PayloadError(`the body holds several Kobo records (${found.map(([p]) => p.join('.')).join(', ')}): set webhook.recordPath`);
  return found.length === 0 ? body : found[0]![1];
}

/**
 * A Kobo REST Service JSON body: the bare record, exactly as in the data API
 * (an array of records is accepted too), or the record inside a payload
 * template. Throws a PayloadError naming the problem (and, for an array, the
 * record's index); the ingress keeps such a body as a dead letter.
 */
export function parseKoboWebhook(sourceId: string, body: unknown, receivedAt: Date, hints: WebhookHints = {}): CanonicalSubmission[] {
  const inner = unwrapKoboRecord(body, hints.recordPath);
  if (!Array.isArray(inner)) return [one(sourceId, inner, receivedAt, hints)];
  if (inner.length === 0) throw new PayloadError('body is an empty array: expected a Kobo record');
  return inner.map((r, i) => {
    if (!isObject(r)) throw new PayloadError(`record ${i} must be a JSON object`);
    try {
      return one(sourceId, r, receivedAt, hints);
    } catch (e) {
      if (e instanceof PayloadError) throw new PayloadError(`record ${i}: ${e.message}`);
      throw e;
    }
  });
}
