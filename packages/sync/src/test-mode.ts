import type { CanonicalSubmission } from '@fieldsync/model';
import type { SourceConnector } from '@fieldsync/connectors';
import { logicalPlan, type Storage } from '@fieldsync/tables';

/**
 * `sync --test-mode`: reads at most `limit` records of a form and shows what a
 * sync would load — the records and the typed columns inferred (or read) for
 * them — without touching the database or the queues. The safe way to try a
 * new source configuration.
 */
export interface PreviewColumn {
  /** The column name the typed table would prefer (before clashes with existing tables are resolved). */
  name: string;
  storage: Storage;
  /** Where in the record it is read (`scores/quality`). */
  path: string;
}

export interface FormPreview {
  formId: string;
  records: CanonicalSubmission[];
  columns: PreviewColumn[];
}

export async function previewForm(connector: SourceConnector, formId: string, limit: number, signal?: AbortSignal): Promise<FormPreview> {
  const records: CanonicalSubmission[] = [];
  for await (const page of connector.pull(formId, null, { via: 'backfill', signal })) {
    records.push(...page.submissions.slice(0, limit - records.length));
    if (records.length >= limit) break; // leaving the loop stops the walk: no further page is fetched
  }
  const defs = connector.formDefinitions ? await connector.formDefinitions(formId, { signal }) : [];
  const columns = defs.length
    ? logicalPlan(defs).columns.filter((c) => c.tableId === '').map((c) => ({ name: c.preferred, storage: c.storage, path: c.part ? `${c.path} (${c.part})` : c.path }))
    : [];
  return { formId, records, columns };
}

const cell = (v: unknown, width = 24): string => {
  const s = v === undefined || v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > width ? `${s.slice(0, width - 1)}…` : s;
};

function at(data: Record<string, unknown>, path: string): unknown {
  if (Object.prototype.hasOwnProperty.call(data, path)) return data[path];
  let v: unknown = data;
  for (const seg of path.split('/')) v = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[seg] : undefined;
  return v;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i]!)).join(' | ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-+-'), ...rows.map(line)].join('\n');
}

/** The preview as text: the inferred columns, then the records as a table (one column per typed column). */
export function formatPreview(sourceId: string, p: FormPreview, written: boolean): string {
  const out = [`${sourceId}/${p.formId}: ${p.records.length} record(s) read; ${written ? 'enqueued for loading (--write)' : 'nothing written (add --write to load them)'}`];
  if (p.columns.length) {
    out.push('', 'inferred columns:', table(['column', 'type', 'from'], p.columns.map((c) => [c.name, c.storage, c.path])));
  }
  const shown = p.columns.filter((c) => !c.path.includes(' ('));
  out.push('', 'records:', table(['key', ...shown.map((c) => c.name)], p.records.map((r) => [cell(r.key), ...shown.map((c) => cell(at(r.data, c.path)))])), '');
  return out.join('\n');
}
