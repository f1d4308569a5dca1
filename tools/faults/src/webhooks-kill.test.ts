/**
 * Webhooks arrive at a steady rate while the loader is killed (-9) and
 * restarted twice: every 202 the ingress gave is loaded, exactly once.
 */
import { afterAll, expect, it } from 'vitest';
import { openKoboPipeline, steadyWebhooks, tails, type KoboPipeline } from './kobo-pipeline.ts';
import { sleep, waitFor } from './processes.ts';

const RATE = 50;
const SECONDS = 30;
const RECOVERY_MS = 45_000;

let p: KoboPipeline | undefined;
afterAll(() => p?.close());

it(`${RATE} webhooks/s for ${SECONDS} s, the loader killed twice: every 202 loaded exactly once`, async () => {
  p = await openKoboPipeline({ submissions: 0 });
  const pipeline = p;
  try {
    pipeline.start('ingress');
    let loader = pipeline.start('loader');
    await waitFor('the ingress', async () => (await fetch(`${pipeline.ingressUrl}/readyz`).catch(() => null))?.ok === true, 60_000, 200);
    await waitFor('the loader', () => loader.output().includes('loader consuming ingest'), 60_000, 100);

    const t0 = Date.now();
    const run = steadyWebhooks(pipeline, { perSecond: RATE, seconds: SECONDS });
    const kills: { held: string[]; restart: number }[] = [];
    for (const at of [8_000, 18_000]) {
      await sleep(t0 + at - Date.now());
      // Kill it while it holds a batch, so the stall recovery is what brings that batch back.
      await waitFor('a batch in flight', async () => (await pipeline.queues.ingest.getActiveCount()) > 0, 5_000, 5).catch(() => {});
      loader.kill('SIGKILL');
      await loader.exited;
      const held = (await pipeline.queues.ingest.getActive()).map((j) => j.id!);
      loader = pipeline.start('loader');
      kills.push({ held, restart: Date.now() });
    }
    // Each killed loader's batches complete (after their locks lapse) within 45 s of the restart.
    const recovered: number[] = [];
    for (const k of kills) {
      await waitFor(`the batches held at a kill (${k.held.join(', ')})`, async () => {
        const states = await Promise.all(k.held.map(async (id) => (await pipeline.queues.ingest.getJob(id))?.getState()));
        return states.every((s) => s === 'completed' || s === undefined);
      }, Math.max(1_000, RECOVERY_MS - (Date.now() - k.restart)), 100);
      recovered.push(Date.now() - k.restart);
    }
    // Without batches held at the kill the recovery bound above would check nothing.
    expect(kills.map((k) => k.held.length > 0)).toEqual([true, true]);
    expect(Math.max(...recovered)).toBeLessThanOrEqual(RECOVERY_MS);

    const results = await run.done;
    const accepted = results.filter((r) => r.status === 202);
    await waitFor('every 202 loaded', async () => (await pipeline.t.db.prisma.submission.count({ where: { formId: pipeline.hookAsset } })) >= accepted.length, RECOVERY_MS, 200);
    await pipeline.ingestDrained(10_000);
    console.log(
      `[webhooks-kill] ${results.length} webhooks at ${RATE}/s, ${accepted.length} answered 202 ` +
        `(${results.filter((r) => r.attempts > 1).length} needed a retry); loader killed twice holding ${kills.map((k) => k.held.length).join(' and ')} batches; ` +
        `those batches loaded ${recovered.map((ms) => (ms / 1000).toFixed(1)).join(' s and ')} s after each restart`,
    );

    // The ingress never depended on the loader: every POST was accepted.
    expect(accepted.length).toBe(results.length);
    await pipeline.expectExactly(pipeline.hookAsset, accepted.map((r) => r.record));
    expect(await pipeline.deadLetters()).toEqual({ table: 0, queue: 0, failedIngest: 0 });
    expect(pipeline.apps.filter((a) => a.alive()).map((a) => a.name).sort()).toEqual(['ingress', 'loader']);
  } catch (err) {
    (err as Error).message += `\n${tails(pipeline.apps)}`;
    throw err;
  }
});
