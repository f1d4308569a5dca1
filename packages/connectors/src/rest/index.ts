export * from './rest.connector.ts';
export * from './rest.auth.ts';
export * from './rest.infer.ts';
export * from './rest.paths.ts';
export * from './limit.ts';
