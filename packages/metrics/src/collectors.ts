import type { Registry } from 'prom-client';
import type { Logger } from '@fieldsync/logger';
import { METRICS } from './definitions.ts';
import { build } from './registry.ts';

/** What a BullMQ Queue offers for depth: structural, so this package needs no bullmq. */
export interface CountableQueue {
  name: string;
  getJobCounts(...types: string[]): Promise<Record<string, number>>;
}

export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'paused', 'failed', 'completed'] as const;

export interface CollectOptions {
  log?: Logger;
  /** A scrape must not hang on a Redis or database that is away. Default 3 s. */
  timeoutMs?: number;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/**
 * A gauge's `collect`: empties the gauge, then reads; on failure the gauge is
 * left empty (no stale numbers) and the scrape still succeeds. Logs once per
 * failing streak.
 */
function onScrape(what: string, o: CollectOptions, read: () => Promise<void>): (this: { reset(): void }) => Promise<void> {
  let failing = false;
  return async function () {
    this.reset();
    try {
      await withTimeout(read(), o.timeoutMs ?? 3_000, what);
      failing = false;
    } catch (err) {
      if (!failing) o.log?.warn({ err: (err as Error).message }, `metrics: could not read ${what}; gauge empty until it can`);
      failing = true;
    }
  };
}

/** fieldsync_queue_jobs{queue,state}, from BullMQ getJobCounts on every scrape. */
export function collectQueueDepth(registry: Registry, queues: CountableQueue[], o: CollectOptions = {}) {
  const gauge = build(registry, METRICS.queueJobs, onScrape('queue depth', o, async () => {
    const counts = await Promise.all(queues.map(async (q) => [q.name, await q.getJobCounts(...QUEUE_STATES)] as const));
    for (const [queue, c] of counts) for (const state of QUEUE_STATES) gauge.set({ queue, state }, c[state] ?? 0);
  }));
  return gauge;
}

export interface LastSuccess {
  source: string;
  form: string;
  finishedAt: Date;
}

/** fieldsync_form_last_success_age_seconds{source,form}: `read` returns each form's newest successful run. */
export function collectFreshness(registry: Registry, read: () => Promise<LastSuccess[]>, o: CollectOptions = {}) {
  const gauge = build(registry, METRICS.freshness, onScrape('form freshness', o, async () => {
    const rows = await read();
    const now = Date.now();
    for (const r of rows) gauge.set({ source: r.source, form: r.form }, Math.max(0, (now - r.finishedAt.getTime()) / 1000));
  }));
  return gauge;
}
