import type { FieldsyncConfig } from '@fieldsync/config';
import type { Dialect } from '@fieldsync/db';
import { TypedTables, type TablesLog } from './service.ts';

export * from './coerce.ts';
export * from './ident.ts';
export * from './plan.ts';
export * from './rows.ts';
export * from './schema.ts';
export * from './service.ts';
export * from './write.ts';

/** The loader's typed tables from the config; null when they are switched off everywhere. */
export function typedTablesFromConfig(config: FieldsyncConfig, dialect: Dialect, log?: TablesLog): TypedTables | null {
  if (!config.tables.enabled) return null;
  return new TypedTables(
    dialect,
    {
      schema: config.tables.schema,
      prefix: config.tables.prefix,
      sources: Object.fromEntries(config.sources.map((s) => [s.id, s.tables])),
    },
    log,
  );
}
