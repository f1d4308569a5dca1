/**
 * Redis (AOF, fsync always) crashes and comes back mid-backfill while
 * webhooks arrive: the apps reconnect by themselves (none exits), every
 * webhook the ingress answered 202 is loaded, and so is every backfilled record.
 */
import { afterAll, expect, it } from 'vitest';
import { openKoboPipeline, steadyWebhooks, tails, type KoboPipeline } from './kobo-pipeline.ts';
import { startRedisInstance, type RedisInstance } from './redis-instance.ts';
import { sleep, waitFor } from './processes.ts';

const RECORDS = 20_000;
const DOWN_MS = 3_000;

let redis: RedisInstance | undefined;
let p: KoboPipeline | undefined;
afterAll(async () => {
  await p?.close();
  await redis?.destroy();
});

it('a Redis crash and restart mid-backfill, with webhooks arriving: every 202 and every backfilled record loaded', async () => {
  redis = await startRedisInstance();
  // Small, slowed pages: the backfill is still running when Redis goes.
  p = await openKoboPipeline({ submissions: RECORDS, pageSize: 200, redisUrl: redis.url });
  p.kobo.failNext(...Array.from({ length: 100 }, () => ({ delayMs: 40 })));
  const pipeline = p;
  const loaded = (formId: string) => pipeline.t.db.prisma.submission.count({ where: { formId } });
  try {
    pipeline.start('ingress');
    pipeline.start('loader');
    await waitFor('the ingress', async () => (await fetch(`${pipeline.ingressUrl}/readyz`).catch(() => null))?.ok === true, 60_000, 200);
    pipeline.start('poller');
    await waitFor('the backfill to be under way', async () => (await loaded(pipeline.asset)) >= 3_000, 90_000, 20);
    // Webhooks before, during and after the outage.
    const run = steadyWebhooks(pipeline, { perSecond: 20, seconds: 15 });
    await sleep(3_000);

    const atCrash = await loaded(pipeline.asset);
    await redis.stop('SIGKILL');
    await sleep(DOWN_MS);
    const back = Date.now();
    await redis.start();
    const atRestart = await loaded(pipeline.asset);
    await waitFor('loading to resume', async () => (await loaded(pipeline.asset)) > atRestart, 60_000, 50);
    const resumedMs = Date.now() - back;

    await waitFor('every backfilled record loaded', async () => (await loaded(pipeline.asset)) === RECORDS, 90_000, 200);
    const backfillMs = Date.now() - back;
    const results = await run.done;
    const accepted = results.filter((r) => r.status === 202);
    await waitFor('every 202 loaded', async () => (await loaded(pipeline.hookAsset)) >= accepted.length, 60_000, 200);
    await pipeline.ingestDrained(30_000);
    console.log(
      `[redis-restart] Redis killed at ${atCrash}/${RECORDS} backfilled rows, down ${DOWN_MS / 1000} s; ` +
        `${results.length} webhooks: ${accepted.length} answered 202, ${results.filter((r) => r.attempts > 1).length} needed retries ` +
        `(${results.filter((r) => r.status !== 202).length} never accepted); loading resumed ${(resumedMs / 1000).toFixed(1)} s and the backfill was complete ${(backfillMs / 1000).toFixed(1)} s after Redis was back`,
    );

    await pipeline.expectExactly(pipeline.asset, pipeline.kobo.records(pipeline.asset));
    // Every 202 is a row in its version; nothing else arrives for that form but webhooks.
    const rows = await pipeline.rows(pipeline.hookAsset);
    for (const r of accepted) expect(rows.get(String(r.record._id))).toBe(r.record['meta/instanceID']);
    expect(rows.size).toBeLessThanOrEqual(results.length);
    expect(results.some((r) => r.attempts > 1)).toBe(true); // the outage was seen by the senders
    expect(await pipeline.deadLetters()).toEqual({ table: 0, queue: 0, failedIngest: 0 });
    expect(pipeline.apps.map((a) => [a.name, a.alive()])).toEqual([['ingress', true], ['loader', true], ['poller', true]]);
    // Reconnecting is routine: every Redis client has a listener (an unheard one prints this on each attempt).
    expect(pipeline.apps.filter((a) => a.output().includes('Unhandled error event')).map((a) => a.name)).toEqual([]);
  } catch (err) {
    (err as Error).message += `\n${tails(pipeline.apps)}`;
    throw err;
  }
});
