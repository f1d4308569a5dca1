import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { METRICS, type MetricDef } from './definitions.ts';

type Labels<D extends MetricDef> = D['labelNames'][number] & string;
type Built<D extends MetricDef> = D['type'] extends 'counter' ? Counter<Labels<D>> : D['type'] extends 'gauge' ? Gauge<Labels<D>> : Histogram<Labels<D>>;

/** A metric of the table, registered in `registry`; `collect` runs on every scrape (gauges read on demand). */
export function build<D extends MetricDef>(registry: Registry, d: D, collect?: (this: Gauge<Labels<D>>) => Promise<void>): Built<D> {
  const base = { name: d.name, help: d.help, labelNames: [...d.labelNames] as Labels<D>[], registers: [registry] };
  switch (d.type) {
    case 'counter':
      return new Counter(base) as Built<D>;
    case 'gauge':
      return new Gauge({ ...base, ...(collect ? { collect } : {}) }) as Built<D>;
    case 'histogram':
      return new Histogram({ ...base, buckets: [...(d.buckets ?? [])] }) as Built<D>;
  }
}

/** One registry per app instance (tests create several); process metrics (CPU, memory, event loop) included. */
export function createRegistry(defaults = true): Registry {
  const registry = new Registry();
  if (defaults) collectDefaultMetrics({ register: registry });
  return registry;
}

/** The ingress's webhook metrics. */
export function createIngressMetrics(registry = createRegistry()) {
  return {
    registry,
    requests: build(registry, METRICS.webhookRequests),
    enqueued: build(registry, METRICS.webhookEnqueued),
    unparsed: build(registry, METRICS.webhookUnparsed),
    errors: build(registry, METRICS.webhookErrors),
  };
}
export type IngressMetrics = ReturnType<typeof createIngressMetrics>;

/** What the loader's processors record. */
export function createLoaderMetrics(registry = createRegistry()) {
  return {
    registry,
    recordsLoaded: build(registry, METRICS.recordsLoaded),
    batchDuration: build(registry, METRICS.batchDuration),
    deadLetters: build(registry, METRICS.deadLetters),
    poisonRecords: build(registry, METRICS.poisonRecords),
    outageWaits: build(registry, METRICS.outageWaits),
  };
}
export type LoaderMetrics = ReturnType<typeof createLoaderMetrics>;

/** What the poller's runs and its source HTTP clients record. */
export function createPollerMetrics(registry = createRegistry()) {
  return {
    registry,
    syncRuns: build(registry, METRICS.syncRuns),
    syncRunDuration: build(registry, METRICS.syncRunDuration),
    recordsFetched: build(registry, METRICS.recordsFetched),
    httpRequests: build(registry, METRICS.httpRequests),
    loginFailures: build(registry, METRICS.loginFailures),
    outageWaits: build(registry, METRICS.outageWaits),
  };
}
export type PollerMetrics = ReturnType<typeof createPollerMetrics>;
