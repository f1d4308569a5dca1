import { z } from 'zod';

/**
 * A form definition as every connector normalises it (Kobo asset version content,
 * ODK `/fields` + XForm, later Socrata column metadata): the contract between the
 * connectors that read definitions and the analyst-tables layer that builds typed
 * tables from them. Stored per version in `FormSchema.definition`.
 */

/** Question types after normalisation; each source's spelling maps onto one of these. */
export const FieldType = z.enum([
  'integer', 'decimal', 'text', 'select_one', 'select_multiple',
  'date', 'time', 'datetime', 'boolean',
  /** A date and time without a zone (Socrata `calendar_date`, a "floating timestamp"): stored as written, never shifted. */
  'timestamp_local',
  'geopoint', 'geotrace', 'geoshape',
  /** image/audio/video/file: the answer is a file name. */
  'binary',
  /** No answer is stored (Kobo/ODK notes). */
  'note',
  'group', 'repeat',
]);
export type FieldType = z.infer<typeof FieldType>;

/** Labels by language; `default` when the form has no translations. */
export const Labels = z.record(z.string(), z.string());
export type Labels = z.infer<typeof Labels>;

export interface FormField {
  /** The question's own name (Kobo `$autoname`/`name`, ODK `name`). */
  name: string;
  /**
   * Full path from the record root, one segment per group/repeat level, as the
   * record's keys spell it (Kobo `$xpath` split on `/`, ODK `path` without the
   * leading `/`). Never a sanitised name: two fields may sanitise alike.
   */
  path: string[];
  type: FieldType;
  /** The type exactly as the source wrote it (`select_one`, `dateTime`, `int`, `odk:rank` …). */
  sourceType: string;
  labels: Labels;
  /** select_one / select_multiple: the choice list's name. */
  choiceList?: string;
  /** group / repeat: what is inside, in form order. */
  children?: FormField[];
}

export const FormField: z.ZodType<FormField> = z.lazy(() =>
  z.object({
    name: z.string().min(1),
    path: z.array(z.string().min(1)).min(1),
    type: FieldType,
    sourceType: z.string(),
    labels: Labels,
    choiceList: z.string().optional(),
    children: z.array(FormField).optional(),
  }),
);

export const Choice = z.object({
  list: z.string().min(1),
  name: z.string(),
  labels: Labels,
});
export type Choice = z.infer<typeof Choice>;

export const FormDefinition = z.object({
  sourceId: z.string().min(1),
  formId: z.string().min(1),
  /** The version this definition belongs to (Kobo version uid, ODK version string). */
  version: z.string(),
  /** The form's own title/name, for table naming. */
  title: z.string(),
  /**
   * How records of this form spell paths: `kobo` = flat keys joined by `/`
   * (repeat entries are objects whose keys are full paths); `odk` = nested
   * objects per group, repeat entries nested the same way and carrying `__id`;
   * `flat` = plain JSON records (Socrata rows, REST APIs): a field is a top-level
   * key, a field inside a group a key of the nested object (read like `odk`).
   */
  shape: z.enum(['kobo', 'odk', 'flat']),
  languages: z.array(z.string()),
  fields: z.array(FormField),
  choices: z.array(Choice),
});
export type FormDefinition = z.infer<typeof FormDefinition>;
