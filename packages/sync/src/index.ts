export * from './db-errors.ts';
export * from './ingest.processor.ts';
export * from './poll.runner.ts';
export * from './schedules.ts';
export * from './ingest.worker.ts';
export * from './poll.worker.ts';
export * from './replay.ts';
export * from './runtime.ts';
