export * from './dialect.ts';
export * from './database.ts';
export * from './migrate.ts';
export * from './submissions.ts';
export * from './sync-state.ts';
export * from './dead-letters.ts';
export * from './admin.ts';
export * from './form-schemas.ts';
