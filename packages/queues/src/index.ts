export * from './catalog.ts';
export * from './connection.ts';
export * from './batching.ts';
export * from './lazy-data.ts';
