import { z } from 'zod';
import type { CanonicalSubmission, Via } from '@fieldsync/model';
import { OdkError } from './odk.client.ts';

/** What fieldsync reads from a Submissions row; everything else rides along untouched in `data`. */
const Row = z.looseObject({
  __id: z.string().min(1),
  meta: z.looseObject({ instanceID: z.string().nullish() }).nullish(),
  __system: z.looseObject({
    submissionDate: z.iso.datetime({ offset: true }),
    updatedAt: z.iso.datetime({ offset: true }).nullish(),
    deletedAt: z.iso.datetime({ offset: true }).nullish(),
  }),
});

/** A `$select=__id,__system/updatedAt,__system/deletedAt` row of the sweep. */
export const KeyRow = z.looseObject({
  __id: z.string().min(1),
  __system: z.looseObject({
    updatedAt: z.iso.datetime({ offset: true }).nullish(),
    deletedAt: z.iso.datetime({ offset: true }).nullish(),
  }),
});
export type KeyRow = z.infer<typeof KeyRow>;

export const isoMs = (t: string): string => new Date(t).toISOString();

export interface MapContext {
  sourceId: string;
  formId: string;
  via: Via;
  observedAt: string;
}

/**
 * One OData row → canonical submission. key = `__id` (the first version's instanceID,
 * stable across edits); version = `meta.instanceID` (the current version);
 * updatedAt = `updatedAt ?? submissionDate` (Central leaves updatedAt null until an
 * edit or review); a row with `deletedAt` is a tombstone. `data` is the row exactly
 * as sent, `__system` (reviewState, edits, submitter...) and inlined repeats included.
 */
export function toCanonical(raw: unknown, ctx: MapContext): CanonicalSubmission {
  const parsed = Row.safeParse(raw);
  if (!parsed.success) throw new OdkError(`unexpected submission row from ODK Central (form ${ctx.formId}): ${z.prettifyError(parsed.error)}`);
  const { __id, meta, __system: sys } = parsed.data;
  return {
    sourceId: ctx.sourceId,
    formId: ctx.formId,
    key: __id,
    version: meta?.instanceID || __id,
    updatedAt: isoMs(sys.updatedAt ?? sys.submissionDate),
    submittedAt: isoMs(sys.submissionDate),
    deleted: sys.deletedAt != null,
    deletedAt: sys.deletedAt != null ? isoMs(sys.deletedAt) : null,
    observedAt: ctx.observedAt,
    data: raw as Record<string, unknown>,
    via: ctx.via,
  };
}
