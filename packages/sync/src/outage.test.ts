/**
 * The database goes away under a running loader: batches wait (without spending
 * their attempts) and load once it is back — nothing dead-lettered, nothing lost.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeSubmission } from '@fieldsync/model/testing';
import { openDatabase, type Database, type Dialect } from '@fieldsync/db';
import { IngestBatch, PollForm } from '@fieldsync/queues';
import { startKoboSimulator } from '@fieldsync/simulator';
import { startPollWorker } from './poll.worker.ts';
import { drained } from '@fieldsync/queues/testing';
import { Cable } from '@fieldsync/db/testing';
import { openHarness, koboTestConfig, testLog, until, type Harness } from './testing.ts';
import { isUnavailable } from './db-errors.ts';


const sub = (i: number) => makeSubmission({ formId: 'outage', key: String(i), version: `v${i}`, data: { i } });

describe.each<[Dialect, number]>([['postgresql', 5432], ['mysql', 3306]])('database outage on %s', (dialect, port) => {
  const cable = new Cable(port);
  let h: Harness;
  let viaCable: Database;

  beforeAll(async () => {
    h = await openHarness(dialect);
    await cable.plug();
    const u = new URL(h.t.url);
    u.port = String(cable.port);
    viaCable = openDatabase(u.toString(), { poolSize: 2, connectTimeoutMs: 1_000 });
    h.startLoader({ db: viaCable, outage: { maxRetries: 100, baseDelayMs: 100, maxDelayMs: 400 } });
  });
  afterAll(async () => {
    await h?.close();
    await viaCable?.close().catch(() => {});
  });

  it('a batch that arrives while the database is down waits, keeps its attempts, and loads when it is back', async () => {
    await h.queues.ingest.add(IngestBatch.name, { submissions: [sub(0)] }, IngestBatch.options);
    await drained(h.queues.ingest);

    await cable.cut();
    const job = await h.queues.ingest.add(IngestBatch.name, { submissions: [1, 2, 3].map(sub) }, { ...IngestBatch.options, attempts: 2 });
    // Several connection failures later the job is still waiting its turn, attempts untouched.
    await new Promise((r) => setTimeout(r, 2_500));
    const waiting = (await h.queues.ingest.getJob(job.id!))!;
    expect(['delayed', 'waiting', 'active']).toContain(await waiting.getState());
    expect(waiting.attemptsMade).toBe(0);
    expect((waiting.data as { outageRetries?: number }).outageRetries).toBeGreaterThan(1);

    await cable.plug();
    await drained(h.queues.ingest, 30_000);
    expect(await (await h.queues.ingest.getJob(job.id!))!.getState()).toBe('completed');
    expect(await h.db.prisma.submission.count({ where: { formId: 'outage' } })).toBe(4);
    expect(await h.db.prisma.deadLetter.count()).toBe(0);
  });

  it('connections cut again and again while batches are in their transactions: the process stays up, every record loads once', async () => {
    // A lost connection on a checked-out client is an 'error' event; without a listener it kills the process.
    const crashes: unknown[] = [];
    const onCrash = (err: unknown) => crashes.push(err);
    process.on('uncaughtException', onCrash);
    try {
      const per = 150;
      let batches = 0;
      const addBatches = async (n: number) => {
        const from = batches;
        batches += n;
        await h.queues.ingest.addBulk(
          Array.from({ length: n }, (_, j) => from + j).map((b) => ({
            name: IngestBatch.name,
            data: { submissions: Array.from({ length: per }, (_, i) => makeSubmission({ formId: 'cuts', key: String(b * per + i), version: `v${b}-${i}`, data: { b, i } })) },
            opts: IngestBatch.options,
          })),
        );
      };
      await addBatches(40);
      let cuts = 0;
      // Cut only while jobs are active, i.e. while a transaction holds a connection. A fast
      // machine can load the batches before enough cuts: then more batches, up to 8 cuts.
      for (let tries = 0; cuts < 8 && tries < 300; tries++) {
        const c = await h.queues.ingest.getJobCounts('waiting', 'active', 'delayed');
        if (c.waiting === 0 && c.active === 0 && c.delayed === 0) {
          await addBatches(20);
          continue;
        }
        if ((c.active ?? 0) > 0) {
          await cable.cut();
          cuts++;
          await new Promise((r) => setTimeout(r, 150));
          await cable.plug();
        }
        await new Promise((r) => setTimeout(r, 120));
      }
      expect(crashes.map(String)).toEqual([]);
      expect(cuts).toBeGreaterThanOrEqual(4);
      await drained(h.queues.ingest, 60_000);
      expect(crashes.map(String)).toEqual([]);
      expect(await h.db.prisma.submission.count({ where: { formId: 'cuts' } })).toBe(batches * per);
      expect(await h.db.prisma.deadLetter.count()).toBe(0);
      expect(await h.queues.ingest.getFailedCount()).toBe(0);
    } finally {
      process.off('uncaughtException', onCrash);
    }
  });

  it('a poll that fails because the database is down waits for it without spending its attempts, then completes', async () => {
    const kobo = await startKoboSimulator({ submissions: 300, seed: 5 });
    const asset = kobo.assetUids[0]!;
    const config = koboTestConfig(kobo, { forms: [asset], pageSize: 100, batchSize: 100 });
    const poller = startPollWorker({ settings: h.settings, db: viaCable, queues: h.queues, log: testLog, config });
    try {
      await cable.cut();
      const job = await h.queues.poll.add(PollForm.name, { sourceId: 'kobo', formId: asset, mode: 'poll' }, { ...PollForm.options, attempts: 1 });
      await new Promise((r) => setTimeout(r, 3_000));
      const waiting = (await h.queues.poll.getJob(job.id!))!;
      // With one attempt, a failure that spent it would leave the job failed now.
      expect(['delayed', 'waiting', 'active']).toContain(await waiting.getState());
      expect(waiting.attemptsMade).toBe(0);
      expect((waiting.data as { outageRetries?: number }).outageRetries).toBeGreaterThanOrEqual(1);

      // Back while the job waits its turn (an attempt in flight as it returns: the next test).
      for (let i = 0; i < 200 && (await waiting.getState()) !== 'delayed'; i++) await new Promise((r) => setTimeout(r, 50));
      await cable.plug();
      await drained(h.queues.poll, 60_000);
      expect(await (await h.queues.poll.getJob(job.id!))!.getState()).toBe('completed');
      await drained(h.queues.ingest, 30_000);
      expect(await h.db.prisma.submission.count({ where: { sourceId: 'kobo', formId: asset } })).toBe(300);
    } finally {
      await poller.close();
      await kobo.close();
    }
  });

  /** Until the poll job has waited for the outage and sits delayed, its attempts untouched. */
  const waitingOutOutage = (id: string) =>
    until(async () => {
      const j = (await h.queues.poll.getJob(id))!;
      return { retries: (j.data as { outageRetries?: number }).outageRetries ?? 0, state: await j.getState() };
    }, (v) => v.retries >= 1 && v.state === 'delayed');

  it('a poll attempt in flight when the database returns fails on the outage, and is retried without spending an attempt', async () => {
    const kobo = await startKoboSimulator({ submissions: 200, seed: 6 });
    const asset = kobo.assetUids[0]!;
    const config = koboTestConfig(kobo, { forms: [asset], pageSize: 100, batchSize: 100 });
    // The race made certain: once armed, the run's next query fails with the error the
    // driver gave while the database was down, as a query sent just before it returned would.
    let lost: unknown = null;
    let failNext = false;
    const sql = viaCable.sql;
    const racing: Database = {
      dialect: viaCable.dialect,
      prisma: viaCable.prisma,
      transaction: (fn) => viaCable.transaction(fn),
      close: async () => {},
      sql: {
        query: ((text: string, params?: unknown[]) => {
          if (failNext && text !== 'SELECT 1') {
            failNext = false;
            return Promise.reject(lost);
          }
          return sql.query(text, params);
        }) as Database['sql']['query'],
        execute: (text, params) => sql.execute(text, params),
      },
    };
    const poller = startPollWorker({ settings: h.settings, db: racing, queues: h.queues, log: testLog, config });
    try {
      await cable.cut();
      lost = await sql.query('SELECT 2').then(() => null, (e: unknown) => e);
      expect(isUnavailable(lost)).toBe(true);
      const job = await h.queues.poll.add(PollForm.name, { sourceId: 'kobo', formId: asset, mode: 'poll' }, { ...PollForm.options, attempts: 1 });
      await waitingOutOutage(job.id!);
      failNext = true;
      await cable.plug();
      await drained(h.queues.poll, 60_000);
      expect(failNext).toBe(false); // the armed failure happened
      const done = (await h.queues.poll.getJob(job.id!))!;
      expect(await done.getState()).toBe('completed');
      expect(done.attemptsMade).toBe(1);
      await drained(h.queues.ingest, 30_000);
      expect(await h.db.prisma.submission.count({ where: { sourceId: 'kobo', formId: asset } })).toBe(200);
    } finally {
      await poller.close();
      await kobo.close();
    }
  });

  it('a source that refuses connections spends its attempts, after an outage wait too (one free retry, no more)', async () => {
    const kobo = await startKoboSimulator({ submissions: 10, seed: 7 });
    const asset = kobo.assetUids[0]!;
    const config = koboTestConfig(kobo, { forms: [asset], http: { timeoutMs: 2000, retries: 1, backoffMs: 50, maxBackoffMs: 50 } });
    await kobo.close(); // the source now refuses connections: the same codes a database outage gives
    const poller = startPollWorker({ settings: h.settings, db: viaCable, queues: h.queues, log: testLog, config });
    const failed = (id: string) => until(async () => (await h.queues.poll.getJob(id))!, (j) => j.finishedOn !== undefined, 30_000);
    try {
      // The database is up: its probe answers, so the source's refusal spends the one attempt.
      const plain = await h.queues.poll.add(PollForm.name, { sourceId: 'kobo', formId: asset, mode: 'poll' }, { ...PollForm.options, attempts: 1 });
      const p = await failed(plain.id!);
      expect(await p.getState()).toBe('failed');
      expect(p.data).toEqual({ sourceId: 'kobo', formId: asset, mode: 'poll' }); // neither waited nor retried free

      // After a wait for a database outage the refusal looks like an attempt caught by its end:
      // retried once without spending the attempt, then spent.
      await cable.cut();
      const job = await h.queues.poll.add(PollForm.name, { sourceId: 'kobo', formId: asset, mode: 'poll' }, { ...PollForm.options, attempts: 1 });
      await waitingOutOutage(job.id!);
      await cable.plug();
      const j = await failed(job.id!);
      expect(await j.getState()).toBe('failed');
      expect(j.attemptsMade).toBe(1);
      expect(j.data).toMatchObject({ outageRecovered: true });
    } finally {
      await poller.close();
    }
  });
});
