import type { Database } from './database.ts';

export interface DeadLetterInput {
  queue: string;
  jobName: string;
  jobId?: string | null;
  sourceId?: string | null;
  formId?: string | null;
  payload: unknown;
  error: string;
  attempts: number;
}

/*
 * `DeadLetter.payload` is JSON text that SQL can read (`payload::jsonb` on
 * PostgreSQL, JSON_VALID / JSON_EXTRACT on MariaDB). PostgreSQL's jsonb cannot
 * hold U+0000, which a dead body may well contain, so the escape `\u0000` is
 * stored as the escape `\u2400` (␀, SYMBOL FOR NULL): SQL shows ␀ where the
 * data had NUL. JSON.stringify never writes `\u2400` as an escape (it writes
 * that character raw), so the change is reversed exactly when read back here.
 */
const NUL_ESCAPE = /(?<!\\)((?:\\\\)*)\\u0000/g;
const NUL_STAND_IN = /(?<!\\)((?:\\\\)*)\\u2400/g;

/** JSON text of a payload, readable as JSON by both databases (see above). */
export function encodeDeadLetterPayload(payload: unknown): string {
  return JSON.stringify(payload).replace(NUL_ESCAPE, '$1\\u2400');
}

/** The payload exactly as it was given to recordDeadLetter. */
export function decodeDeadLetterPayload(text: string): unknown {
  return JSON.parse(text.replace(NUL_STAND_IN, '$1\\u0000'));
}

export async function recordDeadLetter(db: Database, d: DeadLetterInput): Promise<bigint> {
  const row = await db.prisma.deadLetter.create({
    data: {
      queue: d.queue,
      jobName: d.jobName,
      jobId: d.jobId ?? null,
      sourceId: d.sourceId ?? null,
      formId: d.formId ?? null,
      payload: encodeDeadLetterPayload(d.payload),
      error: d.error.replaceAll('\u0000', '\u2400').slice(0, 10_000),
      attempts: d.attempts,
      failedAt: new Date(),
    },
  });
  return row.id;
}

export async function markDeadLetterReplayed(db: Database, id: bigint): Promise<void> {
  await db.prisma.deadLetter.update({ where: { id }, data: { replayedAt: new Date() } });
}
