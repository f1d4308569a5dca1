export * from './kobo/index.ts';
export * from './odk/index.ts';
export * from './socrata/index.ts';
export * from './rest/index.ts';
export * from './attachments.ts';
