/**
 * The database stopped for 30 s while batches are loading, on a PostgreSQL /
 * MariaDB server the test runs itself: no process exits, a loader started
 * during the outage waits for the database (and says so) instead of exiting,
 * and once the server is back every record is loaded exactly once, in its
 * current version, with no dead letters.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { migrate, openDatabase, recreateDatabase, type Dialect } from '@fieldsync/db';
import type { TestDatabase } from '@fieldsync/db/testing';
import { PollForm } from '@fieldsync/queues';
import { startMariaDb, startPostgres, type DbInstance } from './db-instances.ts';
import { openKoboPipeline, tails, type KoboPipeline } from './kobo-pipeline.ts';
import { sleep, waitFor, type AppProcess } from './processes.ts';

const RECORDS = 20_000;
const OUTAGE_MS = 30_000;
const WAITING = 'database unavailable; waiting';

async function databaseOn(server: DbInstance): Promise<TestDatabase> {
  const u = new URL(server.url);
  u.pathname = '/fieldsync_outage';
  const url = u.toString();
  await recreateDatabase(url);
  await migrate(url);
  const db = openDatabase(url, { poolSize: 2, connectTimeoutMs: 2_000 });
  return { url, db, drop: () => db.close().catch(() => {}) };
}

// Both databases at once (each its own server, database, queue prefix and processes): most of the time is waiting.
describe.concurrent.each<[Dialect, () => Promise<DbInstance>]>([
  ['postgresql', startPostgres],
  ['mysql', startMariaDb],
])('database stopped for 30 s mid-load on %s', (dialect, startServer) => {
  let server: DbInstance;
  let p: KoboPipeline | undefined;
  beforeAll(async () => {
    server = await startServer();
  });
  afterEach(async () => {
    await p?.close();
    p = undefined;
  });
  afterAll(async () => {
    await server?.destroy();
  });

  const loaded = () => p!.t.db.prisma.submission.count({ where: { formId: p!.asset } });
  const unexpectedExits = (apps: AppProcess[]) => apps.filter((a) => !a.alive()).map((a) => `${a.name} exited: ${a.child.exitCode ?? a.child.signalCode}`);

  it(`no process exits; a loader started during the outage waits; all ${RECORDS} records load once`, async () => {
    const t0 = Date.now();
    const phases: string[] = [];
    const mark = (what: string) => phases.push(`${what} ${((Date.now() - t0) / 1000).toFixed(0)}s`);
    try {
      // Two loader slots: the backfill is enqueued well before it is loaded.
      p = await openKoboPipeline({ dialect, submissions: RECORDS, concurrency: 2, database: await databaseOn(server) });
      const loader = p.start('loader');
      const poller = p.start('poller');
      // The backfill fully enqueued (its run recorded) and loading under way: the outage hits the loader's batches.
      // (A poll caught mid-run fails and retries later; see the report for what a long outage does to it.)
      const backfilled = () => p!.t.db.prisma.syncRun.count({ where: { mode: 'poll', outcome: 'ok' } });
      await waitFor('the backfill to be enqueued and loading under way', async () => (await backfilled()) >= 1 && (await loaded()) >= 1_000, 120_000, 20);
      mark('loading');
      const inFlight = await p.queues.ingest.getActiveCount();
      await server.stop();
      const stoppedAt = Date.now();
      const left = Object.values(await p.queues.ingest.getJobCounts('waiting', 'active', 'delayed')).reduce((a, b) => a + b, 0);
      expect(left).toBeGreaterThan(0); // work was left to load

      // A loader started now must wait for the database, not exit (start-up alone can take seconds on a busy machine).
      const late = p.start('loader');
      // A poll during the outage: its import-log writes fail and the job retries later; the poller stays up.
      await p.queues.poll.add(PollForm.name, { sourceId: 'kobo', formId: p.asset, mode: 'poll' }, PollForm.options);
      // And one told to stop while it waits exits 0 (an orchestrator giving up on it is not a crash).
      const quitter = p.start('loader');
      await waitFor('the late loaders to say they wait for the database', () => [late, quitter].every((a) => a.output().includes(WAITING) || !a.alive()), 60_000, 100);
      expect(late.alive() && quitter.alive()).toBe(true);
      quitter.kill('SIGTERM');
      expect(await quitter.exited).toBe(0);
      p.apps.splice(p.apps.indexOf(quitter), 1);
      await sleep(Math.max(0, OUTAGE_MS - (Date.now() - stoppedAt)));
      const outageMs = Date.now() - stoppedAt;
      expect(unexpectedExits(p.apps)).toEqual([]);
      mark('outage over');

      await server.start();
      const back = Date.now();
      // The first loader has lived through the outage. Stopped now, it leaves the late loader to show that it
      // loads. (Not during the outage: on MariaDB a batch in flight then takes 10-20 s of pool acquire
      // timeouts to give up, which can overrun the shutdown deadline: exit 1, the batch returned to the queue.)
      loader.kill('SIGTERM');
      expect(await loader.exited).toBe(0);
      await waitFor('every record loaded', async () => (await loaded()) === RECORDS, 120_000, 200);
      const allLoadedMs = Date.now() - back;
      await p.ingestDrained(60_000);
      mark('recovered');
      expect(late.alive() && poller.alive()).toBe(true);
      expect(late.output()).toContain('loader consuming ingest');
      await p.expectExactly(p.asset, p.kobo.records(p.asset));
      expect(await p.deadLetters()).toEqual({ table: 0, queue: 0, failedIngest: 0 });
      const reachable = late.output().split('\n').find((l) => l.includes('"database reachable"'));
      const lateReadyMs = reachable ? Date.parse((JSON.parse(reachable) as { time: string }).time) - back : NaN;
      const waits = late.output().split('\n').filter((l) => l.includes(WAITING)).length;
      console.log(
        `[db outage, ${dialect}] stopped ${(outageMs / 1000).toFixed(1)} s with ${inFlight} batches in flight and ${left} batches left; ` +
          `all ${RECORDS} rows ${(allLoadedMs / 1000).toFixed(1)} s after the server was back; late loader: ${waits} wait line(s), connected ${(lateReadyMs / 1000).toFixed(1)} s after the server was back; 0 unexpected exits, 0 dead letters (${phases.join(', ')})`,
      );
    } catch (err) {
      if (p) (err as Error).message += `\n${tails(p.apps)}`;
      throw err;
    }
  });
});
