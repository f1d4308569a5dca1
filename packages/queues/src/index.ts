export * from './catalog.ts';
export * from './connection.ts';
