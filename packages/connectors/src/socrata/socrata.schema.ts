/**
 * `/api/views/{4x4}.json` column metadata → a FormDefinition (shape `flat`: a
 * field is a top-level key of the row, a group's children keys of the nested
 * object). Socrata has no versions of a definition: the version is a hash of
 * the columns, so a changed column list is a new definition.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { FieldType, FormDefinition, FormField } from '@fieldsync/model';

export const SocrataView = z.object({
  id: z.string(),
  name: z.string().default(''),
  rowIdentifierColumnId: z.number().int().nullish(),
  columns: z
    .array(
      z.object({
        id: z.number().int(),
        fieldName: z.string().min(1),
        name: z.string().default(''),
        dataTypeName: z.string().default('text'),
        description: z.string().nullish(),
      }),
    )
    .default([]),
});
export type SocrataView = z.infer<typeof SocrataView>;

/** Socrata type → normalised type. Anything else (line, polygon, photo, …) is kept as its JSON text. */
const TYPES: Record<string, FieldType> = {
  text: 'text',
  // `number` arrives as a string ("42"), `double` as a JSON number: both exact decimals.
  number: 'decimal',
  double: 'decimal',
  money: 'decimal',
  percent: 'decimal',
  // A floating timestamp (no zone) stays one; `date` is a fixed instant.
  calendar_date: 'timestamp_local',
  date: 'datetime',
  checkbox: 'boolean',
  point: 'geopoint',
};

/** The row identifier's field name when the metadata names one, else `:id`. */
export function keyField(view: SocrataView): string {
  const id = view.rowIdentifierColumnId;
  if (id === undefined || id === null) return ':id';
  return view.columns.find((c) => c.id === id)?.fieldName ?? ':id';
}

const leaf = (path: string[], type: FieldType, sourceType: string, label: string): FormField => ({ name: path.at(-1)!, path, type, sourceType, labels: { default: label } });

export function socrataDefinition(sourceId: string, view: SocrataView): FormDefinition {
  const fields: FormField[] = [];
  for (const c of view.columns) {
    // Computed region columns are Socrata's own geocoding joins; meta_data is internal.
    if (c.fieldName.startsWith(':@computed_region') || c.fieldName.startsWith(':') || c.dataTypeName === 'meta_data') continue;
    const label = c.name || c.fieldName;
    if (c.dataTypeName === 'location') {
      // Legacy location: {latitude, longitude, human_address} (strings; human_address is JSON in a string).
      fields.push({
        name: c.fieldName, path: [c.fieldName], type: 'group', sourceType: 'location', labels: { default: label },
        children: [
          leaf([c.fieldName, 'latitude'], 'decimal', 'location.latitude', `${label} (latitude)`),
          leaf([c.fieldName, 'longitude'], 'decimal', 'location.longitude', `${label} (longitude)`),
          leaf([c.fieldName, 'human_address'], 'text', 'location.human_address', `${label} (address)`),
        ],
      });
    } else if (c.dataTypeName === 'url') {
      // {url, description}: the URL is the answer.
      fields.push({ name: c.fieldName, path: [c.fieldName], type: 'group', sourceType: 'url', labels: { default: label }, children: [leaf([c.fieldName, 'url'], 'text', 'url', label)] });
    } else {
      fields.push(leaf([c.fieldName], TYPES[c.dataTypeName] ?? 'text', c.dataTypeName, label));
    }
  }
  const version = createHash('sha1').update(JSON.stringify(fields)).digest('hex').slice(0, 16);
  return { sourceId, formId: view.id, version, title: view.name || view.id, shape: 'flat', languages: [], fields, choices: [] };
}
