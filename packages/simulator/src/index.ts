export * from './kobo/index.ts';
export * from './odk/index.ts';
