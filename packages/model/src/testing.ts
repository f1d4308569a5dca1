import type { CanonicalSubmission } from './submission.ts';

/** A valid canonical submission for tests; override what the test is about. */
export function makeSubmission(over: Partial<CanonicalSubmission> = {}): CanonicalSubmission {
  return {
    sourceId: 'kobo', formId: 'form', key: '1', version: 'uuid:v1',
    updatedAt: '2026-11-20T10:00:00.000Z', submittedAt: '2026-11-20T10:00:00.000Z',
    deleted: false, observedAt: '2026-11-20T10:00:01.000Z', data: {}, via: 'poll',
    ...over,
  };
}
