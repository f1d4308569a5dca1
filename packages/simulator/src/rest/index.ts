export * from './rest.server.ts';
