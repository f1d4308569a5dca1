/**
 * The import log tells the truth while a run is alive and after it died: counts
 * are written as pages arrive, and a run left 'running' by a process that is gone
 * (or that lost the database) is closed as 'interrupted' by the next run of its form,
 * while a live run elsewhere is left alone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConnector, type SourceConnector } from '@fieldsync/connectors';
import { openDatabase, type Database, type Dialect } from '@fieldsync/db';
import { startKoboSimulator, type KoboSimulator } from '@fieldsync/simulator';
import { Cable } from '@fieldsync/db/testing';
import { runPoll, type PollDeps } from './poll.runner.ts';
import { openHarness, koboTestConfig, testLog, until, type Harness } from './testing.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


/** The real connector, holding its pull after `pages` pages until released (a poll in mid-flight). */
function holdAfter(inner: SourceConnector, pages: number) {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let reached!: () => void;
  const held = new Promise<void>((r) => (reached = r));
  const connector = Object.create(inner) as SourceConnector;
  connector.pull = async function* (formId, cursor, opts) {
    let n = 0;
    for await (const page of inner.pull(formId, cursor, opts)) {
      yield page;
      if (++n === pages) {
        reached();
        await gate;
      }
    }
  };
  return { connector, held, release };
}

describe.each<Dialect>(['postgresql', 'mysql'])('SyncRun progress and interrupted runs on %s', (dialect) => {
  let h: Harness;
  let kobo: KoboSimulator;
  let connector: SourceConnector;
  let form: string;
  const deps = (db: Database = h.db): PollDeps => ({ db, queues: h.queues, log: testLog, batchSize: 250, progressEveryMs: 50, staleAfterMs: 1_500 });
  const runsOf = (formId: string) => h.db.prisma.syncRun.findMany({ where: { sourceId: 'kobo', formId }, orderBy: { id: 'asc' } });

  beforeAll(async () => {
    h = await openHarness(dialect);
    kobo = await startKoboSimulator({ submissions: 3000, assets: [{}, {}, {}], seed: 11 });
    connector = createConnector(koboTestConfig(kobo, { pageSize: 500 }).sources[0]!, { logger: testLog });
    form = kobo.assetUids[0]!;
  });
  afterAll(async () => {
    await h?.close();
    await kobo?.close();
  });

  it('writes fetched/enqueued while the run is still going, and the totals at the end', async () => {
    const [f] = kobo.assetUids.slice(1);
    const hold = holdAfter(connector, 2);
    const run = runPoll(deps(), { connector: hold.connector, formId: f!, mode: 'backfill' });
    await hold.held;
    const mid = await until(() => runsOf(f!), (r) => r[0]?.enqueued === 1000);
    expect(mid).toHaveLength(1);
    expect(mid[0]).toMatchObject({ outcome: 'running', fetched: 1000, enqueued: 1000, finishedAt: null });
    // Alive while held: the heartbeat keeps moving between pages.
    const beat1 = mid[0]!.heartbeatAt!.getTime();
    const later = await until(() => runsOf(f!), (r) => r[0]!.heartbeatAt!.getTime() > beat1, 5_000);
    expect(later[0]!.heartbeatAt!.getTime()).toBeGreaterThan(beat1);
    hold.release();
    const summary = await run;
    expect(summary).toMatchObject({ fetched: 3000, enqueued: 3000 });
    expect((await runsOf(f!))[0]).toMatchObject({ outcome: 'ok', fetched: 3000, enqueued: 3000 });
  });

  it('a run that lost the database mid-poll is closed as interrupted (with its last counts) by the next run; a live run is not', async () => {
    // The dying run reaches the database through a cable cut after two pages: its progress,
    // cursor and final writes all fail from then on (a poller cut off by an outage).
    const cable = new Cable(new URL(h.t.url).port ? Number(new URL(h.t.url).port) : dialect === 'mysql' ? 3306 : 5432);
    await cable.plug();
    const u = new URL(h.t.url);
    u.port = String(cable.port);
    const doomed = openDatabase(u.toString(), { poolSize: 2, connectTimeoutMs: 1_000 });
    const hold = holdAfter(connector, 2);
    const dying = runPoll(deps(doomed), { connector: hold.connector, formId: form, mode: 'backfill' }).catch((e: Error) => e);
    await hold.held;
    await until(() => runsOf(form), (r) => r[0]?.enqueued === 1000);
    await cable.cut();
    hold.release();
    expect(await dying).toBeInstanceOf(Error);
    await doomed.close().catch(() => {});
    expect((await runsOf(form))[0]).toMatchObject({ outcome: 'running', fetched: 1000, enqueued: 1000, finishedAt: null });

    // Meanwhile another run of the form is alive (another replica, a CLI backfill): held, heartbeating.
    const other = holdAfter(connector, 1);
    const alive = runPoll(deps(), { connector: other.connector, formId: form, mode: 'backfill' });
    await other.held;
    await sleep(1_700); // the dead run is now older than staleAfterMs; the live one keeps beating

    // The next run of the form starts.
    const next = await runPoll(deps(), { connector, formId: form, mode: 'poll' });
    const runs = await runsOf(form);
    expect(runs).toHaveLength(3);
    const [dead, live, last] = runs;
    expect(dead).toMatchObject({ outcome: 'interrupted', fetched: 1000, enqueued: 1000 });
    expect(dead!.finishedAt).toEqual(dead!.heartbeatAt);
    expect(dead!.error).toMatch(/^interrupted: the process running it stopped or lost the database \(no heartbeat since /);
    expect(live).toMatchObject({ outcome: 'running', finishedAt: null });
    expect(last).toMatchObject({ id: next.runId, outcome: 'ok' });

    other.release();
    await alive;
    expect((await runsOf(form))[1]).toMatchObject({ outcome: 'ok', fetched: 3000 });
  });

  it('a poller starting up closes every stale run, of any form', async () => {
    const f = kobo.assetUids[2]!;
    const old = new Date(Date.now() - 10_000);
    await h.db.prisma.syncRun.create({ data: { sourceId: 'kobo', formId: f, mode: 'poll', startedAt: old, heartbeatAt: old, outcome: 'running', fetched: 40, enqueued: 40 } });
    // A row written before heartbeats existed: its start is its last sign of life.
    await h.db.prisma.syncRun.create({ data: { sourceId: 'other', formId: 'x', mode: 'sweep', startedAt: old, outcome: 'running' } });
    const poller = (await import('./poll.worker.ts')).startPollWorker({
      settings: h.settings, db: h.db, queues: h.queues, log: testLog, config: koboTestConfig(kobo), staleAfterMs: 5_000,
    });
    try {
      const rows = await until(
        () => h.db.prisma.syncRun.findMany({ where: { OR: [{ formId: f }, { sourceId: 'other' }] }, orderBy: { id: 'asc' } }),
        (r) => r.every((x) => x.outcome === 'interrupted'),
        5_000,
      );
      expect(rows.map((r) => [r.outcome, r.fetched, r.finishedAt?.getTime()])).toEqual([
        ['interrupted', 40, old.getTime()],
        ['interrupted', 0, old.getTime()],
      ]);
    } finally {
      await poller.close();
    }
  });
});
