export * from './connector.ts';
export * from './http.ts';
export * from './kobo/index.ts';
export * from './odk/index.ts';
export * from './registry.ts';
export * from './depth.ts';
export * from './webhook.ts';
