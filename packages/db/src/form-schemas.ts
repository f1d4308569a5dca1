import { FormDefinition } from '@fieldsync/model';
import type { Database } from './database.ts';
import { quoteIdent } from './dialect.ts';

/*
 * Form definitions per version (`FormSchema`), as the connectors normalise
 * them. A version's definition never changes at the source (Kobo deployed
 * versions and ODK published versions are immutable), so a stored row is only
 * ever replaced by an explicit re-read.
 */

/**
 * Stores (or replaces) one version's definition. `fetchedAt` also orders the
 * versions of a form: save a batch oldest first with increasing times.
 */
export async function saveFormSchema(db: Database, def: FormDefinition, fetchedAt: Date = new Date()): Promise<void> {
  const d = FormDefinition.parse(def);
  const definition = d as unknown as object;
  await db.prisma.formSchema.upsert({
    where: { sourceId_formId_version: { sourceId: d.sourceId, formId: d.formId, version: d.version } },
    create: { sourceId: d.sourceId, formId: d.formId, version: d.version, definition, fetchedAt },
    update: { definition, fetchedAt },
  });
}

/** Saves definitions in the order given (oldest first), 1 ms apart so they load back in that order. */
export async function saveFormSchemas(db: Database, defs: FormDefinition[], at: Date = new Date()): Promise<void> {
  for (const [i, def] of defs.entries()) await saveFormSchema(db, def, new Date(at.getTime() + i));
}

/** Every stored version of a form, in the order they were stored (oldest first). */
export async function loadFormSchemas(db: Database, sourceId: string, formId: string): Promise<FormDefinition[]> {
  const rows = await db.prisma.formSchema.findMany({ where: { sourceId, formId }, orderBy: [{ fetchedAt: 'asc' }, { version: 'asc' }] });
  return rows.map((r) => {
    const parsed = FormDefinition.safeParse(r.definition);
    if (!parsed.success) throw new Error(`FormSchema ${sourceId}/${formId} version "${r.version}" holds an invalid definition: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    return parsed.data;
  });
}

/** One stored version's definition, or undefined. */
export async function loadFormSchema(db: Database, sourceId: string, formId: string, version: string): Promise<FormDefinition | undefined> {
  const r = await db.prisma.formSchema.findUnique({ where: { sourceId_formId_version: { sourceId, formId, version } } });
  return r ? FormDefinition.parse(r.definition) : undefined;
}

/**
 * The versions stored for a form (cheap: no definitions read). Every poll asks, so it is
 * plain SQL, as the rest of the poll's bookkeeping (see sync-state.ts).
 */
export async function knownFormVersions(db: Database, sourceId: string, formId: string): Promise<Set<string>> {
  const c = (name: string) => quoteIdent(db.dialect, name);
  const rows = await db.sql.query<{ version: string }>(`SELECT ${c('version')} FROM ${c('FormSchema')} WHERE ${c('sourceId')} = ? AND ${c('formId')} = ?`, [sourceId, formId]);
  return new Set(rows.map((r) => r.version));
}
