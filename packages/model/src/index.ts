export * from './submission.ts';
export * from './form.ts';
