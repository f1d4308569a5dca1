export * from './definitions.ts';
export * from './registry.ts';
export * from './collectors.ts';
export * from './server.ts';
