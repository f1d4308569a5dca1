import { CanonicalSubmission, type Via } from '@fieldsync/model';
import { PayloadError } from '../connector.ts';

export type KoboRecord = Record<string, unknown>;

export interface KoboCanonicalContext {
  sourceId: string;
  /** The asset uid. */
  formId: string;
  /** When fieldsync read the record (poll page received, webhook received). */
  observedAt: Date;
  via: Via;
}

const nonEmpty = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

/**
 * This version's identity: `meta/instanceID`, else `_uuid` written the same way
 * (`uuid:` + `_uuid`; Kobo's `_uuid` is the instanceID without its prefix), so a
 * webhook subset and a poll of the same version agree.
 */
export function koboVersion(r: KoboRecord): string | undefined {
  if (nonEmpty(r['meta/instanceID'])) return r['meta/instanceID'];
  if (nonEmpty(r._uuid)) return r._uuid.startsWith('uuid:') ? r._uuid : `uuid:${r._uuid}`;
  return undefined;
}

/**
 * Identity across edits: `_id` (never changes on edit), else `meta/rootUuid`
 * (the first instanceID: a REST Service field subset can drop `_id`), else the
 * instanceID (such a record is keyed by version and cannot be matched to its edits).
 */
export function koboKey(r: KoboRecord): string | undefined {
  const id = r._id;
  if (typeof id === 'number') {
    if (!Number.isSafeInteger(id) || id < 0) throw new PayloadError(`"_id" must be a non-negative integer, got ${JSON.stringify(id)}`);
    return String(id);
  }
  if (typeof id === 'string' && /^\d+$/.test(id)) return id.replace(/^0+(?=\d)/, ''); // a payload template may quote it
  if (id !== undefined && id !== null) throw new PayloadError(`"_id" must be an integer, got ${JSON.stringify(id)}`);
  if (nonEmpty(r['meta/rootUuid'])) return r['meta/rootUuid'];
  return koboVersion(r);
}

const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * "YYYY-MM-DDTHH:MM:SS" (Kobo's own form; digits already checked) that names a real
 * time, as toISOString would write it, or undefined. A Date round trip costs ~2 µs,
 * a noticeable share of a backfill's CPU per record; one that would roll over
 * (Feb 30, 24:00) is left to it, as before.
 */
function plainIso(v: string): string | undefined {
  if (v.length !== 19) return undefined;
  const two = (i: number) => (v.charCodeAt(i) - 48) * 10 + (v.charCodeAt(i + 1) - 48);
  const year = two(0) * 100 + two(2);
  const month = two(5);
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  if (month < 1 || month > 12 || two(8) < 1 || two(8) > (month === 2 && leap ? 29 : MONTH_DAYS[month - 1]!)) return undefined;
  if (two(11) > 23 || two(14) > 59 || two(17) > 59) return undefined;
  return `${v}.000Z`;
}

/** `_submission_time` is UTC written without a zone ("2026-11-16T09:12:44"): read it as UTC, never as local time. */
export function koboTime(v: unknown, field: string): string {
  if (v === undefined || v === null) throw new PayloadError(`missing "${field}"`);
  if (typeof v !== 'string' || !/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?([zZ]|[+-]\d\d:?\d\d)?$/.test(v)) {
    throw new PayloadError(`"${field}" is not a timestamp: ${JSON.stringify(v)}`);
  }
  const plain = plainIso(v);
  if (plain) return plain;
  const t = Date.parse(/([zZ]|[+-]\d\d:?\d\d)$/.test(v) ? v : `${v}Z`);
  if (Number.isNaN(t)) throw new PayloadError(`"${field}" is not a timestamp: ${JSON.stringify(v)}`);
  return new Date(t).toISOString();
}

/** A page's records share one observedAt: its ISO text is made once, not once per record. */
let lastObserved = { ms: Number.NaN, iso: '' };
function isoOnce(d: Date): string {
  const ms = d.getTime();
  if (ms !== lastObserved.ms) lastObserved = { ms, iso: d.toISOString() };
  return lastObserved.iso;
}

/**
 * One Kobo record (data API or REST Service body) as a canonical submission.
 * Throws PayloadError saying what is missing.
 */
export function toCanonical(record: KoboRecord, ctx: KoboCanonicalContext): CanonicalSubmission {
  const version = koboVersion(record);
  if (!version) throw new PayloadError('missing "meta/instanceID"');
  const key = koboKey(record)!; // a version exists, so the last fallback does
  const submittedAt = koboTime(record._submission_time, '_submission_time');
  const observedAt = isoOnce(ctx.observedAt);
  /*
   * Kobo changes no timestamp when a record is edited (`_submission_time` is the
   * first receive time; `_last_edited` is Ona's, not Kobo's). A never-edited
   * version is as old as its submission. A version carrying `meta/deprecatedID`
   * is an edit, and seeing it proves it was current at `observedAt`, so that is
   * its updatedAt: the original it replaced has updatedAt = submittedAt, which
   * is earlier, so a late webhook or a stale page of the original can never beat
   * it; and each later edit is first seen later still. Re-reading the same
   * edited version later gives a later updatedAt but the same version and data,
   * which the upsert treats as a no-op. These times only order versions that the
   * lineage (`replaces`, below) cannot.
   * A sweep re-fetches only records that differ from what is stored (a new
   * validation status keeps the version), so the same holds for its reads:
   * they are current at `observedAt`.
   */
  const deprecated = record['meta/deprecatedID'];
  const edited = deprecated !== undefined && deprecated !== null;
  const changed = edited || ctx.via === 'sweep';
  const parsed = CanonicalSubmission.safeParse({
    sourceId: ctx.sourceId,
    formId: ctx.formId,
    key,
    version,
    // The lineage: what orders Kobo versions (the upsert keeps this link, and the
    // replaced version is known superseded from then on, whatever arrives later).
    replaces: nonEmpty(deprecated) ? deprecated : undefined,
    updatedAt: changed ? observedAt : submittedAt,
    submittedAt,
    deleted: false,
    observedAt,
    data: record,
    via: ctx.via,
  });
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new PayloadError(`${i.path.join('.') || 'record'}: ${i.message}`);
  }
  return parsed.data;
}
