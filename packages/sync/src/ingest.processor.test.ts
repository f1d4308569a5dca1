import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CanonicalSubmission } from '@fieldsync/model';
import { makeSubmission } from '@fieldsync/model/testing';
import { IngestBatch } from '@fieldsync/queues';
import type { Dialect } from '@fieldsync/db';
import { openHarness, until, type Harness } from './testing.ts';
import { replayDeadLetters } from './replay.ts';

function nested(depth: number): unknown {
  return depth === 0 ? 'x' : { d: nested(depth - 1) };
}

const sub = (i: number, data: Record<string, unknown> = { _id: i, q: `answer ${i}` }) =>
  makeSubmission({ formId: 'poison', key: String(i), version: `uuid:${i}`, data });

describe.each<Dialect>(['postgresql', 'mysql'])('ingest worker on %s', (dialect) => {
  let h: Harness;
  beforeAll(async () => {
    h = await openHarness(dialect);
    h.startLoader();
  });
  afterAll(() => h?.close());

  it('loads the good records of a batch and dead-letters the one the database refuses', async () => {
    // A NUL character PostgreSQL's jsonb refuses, nesting deeper than MariaDB's JSON check allows.
    const poison = sub(5, { _id: 5, bad: 'nul\u0000here', deep: nested(40) });
    const batch = [1, 2, 3, 4, 6, 7, 8, 9, 10].map((i) => sub(i));
    batch.splice(4, 0, poison);
    const job = await h.queues.ingest.add(IngestBatch.name, { submissions: batch }, { ...IngestBatch.options, attempts: 2, backoff: { type: 'fixed', delay: 50 } });

    const dead = await until(() => h.db.prisma.deadLetter.findMany(), (r) => r.length > 0);
    expect(dead).toHaveLength(1);
    const payload = JSON.parse(dead[0]!.payload) as { submissions: CanonicalSubmission[] };
    expect(payload.submissions.map((s) => s.key)).toEqual(['5']);
    expect(dead[0]!.error).toMatch(/refused by the database/);
    expect(dead[0]!.attempts).toBe(2);

    const rows = await h.db.prisma.submission.findMany({ where: { formId: 'poison' }, orderBy: { id: 'asc' } });
    expect(rows.map((r) => r.key).sort((a, b) => Number(a) - Number(b))).toEqual(['1', '2', '3', '4', '6', '7', '8', '9', '10']);

    const dlq = await h.queues.deadLetter.getJobs(['waiting', 'completed', 'failed', 'delayed']);
    expect(dlq).toHaveLength(1);
    expect(dlq[0]!.data.error).toMatch(/5:/);
    expect(await (await h.queues.ingest.getJob(job.id!))!.getState()).toBe('failed');
  });

  it('replays a dead letter after the data is fixed', async () => {
    const [row] = await h.db.prisma.deadLetter.findMany();
    // The operator fixes the record in place, then replays.
    await h.db.prisma.deadLetter.update({ where: { id: row!.id }, data: { payload: JSON.stringify({ submissions: [sub(5)] }) } });
    expect(await replayDeadLetters(h.db, h.queues)).toBe(1);
    const fixed = await until(() => h.db.prisma.submission.findFirst({ where: { formId: 'poison', key: '5' } }), (r) => !!r);
    expect(fixed?.via).toBe('replay');
    expect((await h.db.prisma.deadLetter.findUniqueOrThrow({ where: { id: row!.id } })).replayedAt).not.toBeNull();
    expect(await h.queues.deadLetter.count()).toBe(0); // off the dashboard's dead-letter list
  });
});
