export * from './attachments.ts';
export * from './settings.ts';
export * from './store.ts';
export * from './download.ts';
