/**
 * kill -9 mid-backfill: the batches (or the poll) the dead process held are
 * picked up by a new one within 45 s of its start (job locks are short and
 * renewed; a stall check hands lapsed ones on), and every record ends up
 * loaded exactly once, in its current version, with no dead letters.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Dialect } from '@fieldsync/db';
import { openKoboPipeline, tails, type KoboPipeline } from './kobo-pipeline.ts';
import { waitFor } from './processes.ts';

const RECORDS = 20_000;
/** The guarantee: a crashed process's work is picked up within this of a new one starting. */
const RECOVERY_MS = 45_000;

let p: KoboPipeline | undefined;
afterEach(async () => {
  await p?.close();
  p = undefined;
});

async function withLogs<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (p) (err as Error).message += `\n${tails(p.apps)}`;
    throw err;
  }
}

const loaded = () => p!.t.db.prisma.submission.count({ where: { formId: p!.asset } });

describe.each<Dialect>(['postgresql', 'mysql'])('kill -9 of the loader mid-backfill on %s', (dialect) => {
  it(`a new loader loads all ${RECORDS} records, each once, within 45 s`, () =>
    withLogs(async () => {
      p = await openKoboPipeline({ dialect, submissions: RECORDS });
      // The poller first, so the loader has a backlog and is killed holding batches.
      const poller = p.start('poller');
      await waitFor('half the backfill enqueued', async () => (await p!.queues.ingest.getWaitingCount()) >= RECORDS / 500 / 2, 90_000, 50);
      const loader = p.start('loader');
      await waitFor('loading to be under way', async () => (await loaded()) >= 2_000, 90_000, 20);
      loader.kill('SIGKILL');
      await loader.exited;
      const atKill = await loaded();
      // What the dead loader held: still active, locked by a process that is gone.
      const held = await p.queues.ingest.getActive();
      expect(atKill).toBeLessThan(RECORDS);
      expect(held.length).toBeGreaterThan(0);

      const restart = Date.now();
      const next = p.start('loader');
      await waitFor('every record loaded', async () => (await loaded()) === RECORDS, RECOVERY_MS, 200);
      await p.ingestDrained(RECOVERY_MS - (Date.now() - restart));
      const recoveryMs = Date.now() - restart;
      const rerunAt = Math.max(...(await Promise.all(held.map(async (j) => (await p!.queues.ingest.getJob(j.id!))?.processedOn ?? NaN))));
      console.log(
        `[kill-9 loader, ${dialect}] held batches re-run ${((rerunAt - restart) / 1000).toFixed(1)} s after the restart; killed at ${atKill}/${RECORDS} rows holding ${held.length} batches ` +
          `(${held.reduce((n, j) => n + (j.data as { submissions: unknown[] }).submissions.length, 0)} records); ` +
          `all ${RECORDS} visible and the queue drained ${(recoveryMs / 1000).toFixed(1)} s after the new loader started`,
      );

      // The held batches themselves were re-run (after a stall), not lost or failed.
      for (const j of held) {
        const now = await p.queues.ingest.getJob(j.id!);
        expect([await now?.getState(), now?.stalledCounter]).toEqual(['completed', 1]);
      }
      await p.expectExactly(p.asset, p.kobo.records(p.asset));
      expect(await p.deadLetters()).toEqual({ table: 0, queue: 0, failedIngest: 0 });
      expect(next.alive() && poller.alive()).toBe(true);
    }));
});

describe('kill -9 of the poller mid-backfill on postgresql', () => {
  it(`a new poller finishes the backfill: all ${RECORDS} records, each once, within 45 s`, () =>
    withLogs(async () => {
      // The first pages answer slowly, so the poller is caught half-way; the rest (the re-run) at full speed.
      p = await openKoboPipeline({ submissions: RECORDS, pageSize: 1000 });
      p.kobo.failNext(...Array.from({ length: 8 }, () => ({ delayMs: 300 })));
      const loader = p.start('loader');
      const poller = p.start('poller');
      const enqueued = async () => (await p!.queues.ingest.getJobCountByTypes('waiting', 'active', 'delayed', 'prioritized', 'completed')) * 500;
      await waitFor('the backfill to be under way', async () => (await enqueued()) >= 5_000, 90_000, 10);
      poller.kill('SIGKILL');
      await poller.exited;
      const atKill = await enqueued();
      const held = await p.queues.poll.getActive();
      expect(atKill).toBeLessThan(RECORDS);
      expect(held.map((j) => j.data)).toContainEqual(expect.objectContaining({ sourceId: 'kobo', formId: p.asset, mode: 'poll' }));

      const restart = Date.now();
      const next = p.start('poller');
      await waitFor('every record loaded', async () => (await loaded()) === RECORDS, RECOVERY_MS, 200);
      await p.ingestDrained(RECOVERY_MS - (Date.now() - restart));
      const recoveryMs = Date.now() - restart;
      // The interrupted poll itself was taken over and finished (its cursor let it resume).
      await waitFor('the interrupted poll to complete', async () => {
        const states = await Promise.all(held.map(async (j) => (await p!.queues.poll.getJob(j.id!))?.getState()));
        return states.every((s) => s === 'completed' || s === undefined);
      }, Math.max(1_000, RECOVERY_MS - recoveryMs));
      const rerun = await p.queues.poll.getJob(held.find((j) => j.data.mode === 'poll')!.id!);
      console.log(
        `[kill-9 poller, postgresql] killed with ${atKill}/${RECORDS} records enqueued; the interrupted poll (stalled ${rerun?.stalledCounter} time(s)) last started ` +
          `${(((rerun?.processedOn ?? NaN) - restart) / 1000).toFixed(1)} s after the new poller started; all ${RECORDS} visible and the queue drained ` +
          `${(recoveryMs / 1000).toFixed(1)} s after it started`,
      );

      expect([await rerun?.getState(), rerun?.stalledCounter]).toEqual(['completed', 1]); // re-run after its stall, not a new scheduled run
      await p.expectExactly(p.asset, p.kobo.records(p.asset));
      expect(await p.deadLetters()).toEqual({ table: 0, queue: 0, failedIngest: 0 });
      expect(next.alive() && loader.alive()).toBe(true);
    }));
});
