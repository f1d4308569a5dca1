/**
 * Every Prometheus metric fieldsync exports, in one table: name, type, labels,
 * help and the app that exports it. The factories build from it, the deploy/
 * rules and dashboard are checked against it, docs/metrics.md describes it.
 * Labels are bounded sets only (source, form, via, mode, outcome, status,
 * queue, state): never a record key or an error message.
 */
export type AppName = 'ingress' | 'loader' | 'poller';

export interface MetricDef {
  type: 'counter' | 'gauge' | 'histogram';
  name: string;
  help: string;
  labelNames: readonly string[];
  apps: readonly AppName[];
  buckets?: readonly number[];
}

const def = <T extends MetricDef>(d: T) => d;

/** Batches take milliseconds to seconds; a backfill run minutes to hours. */
const BATCH_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const RUN_BUCKETS = [0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200];

export const METRICS = {
  // ingress
  webhookRequests: def({ type: 'counter', name: 'fieldsync_webhook_requests_total', help: 'Webhook requests by source and HTTP status', labelNames: ['source', 'status'], apps: ['ingress'] }),
  webhookEnqueued: def({ type: 'counter', name: 'fieldsync_webhook_submissions_enqueued_total', help: 'Submissions durably enqueued from webhooks', labelNames: ['source'], apps: ['ingress'] }),
  webhookUnparsed: def({ type: 'counter', name: 'fieldsync_webhook_unparsed_total', help: 'Authenticated webhook bodies no parser understood, kept for the loader (dead-lettered if it cannot read them either)', labelNames: ['source'], apps: ['ingress'] }),
  webhookErrors: def({ type: 'counter', name: 'fieldsync_webhook_errors_total', help: 'Webhook requests refused or failed, by reason', labelNames: ['source', 'reason'], apps: ['ingress'] }),
  // loader
  recordsLoaded: def({ type: 'counter', name: 'fieldsync_records_loaded_total', help: 'Records stored in the database, by source, form and how they arrived (poll, sweep, backfill, webhook, replay)', labelNames: ['source', 'form', 'via'], apps: ['loader'] }),
  batchDuration: def({ type: 'histogram', name: 'fieldsync_ingest_batch_duration_seconds', help: 'Ingest batch attempts and their duration, by outcome (ok, poison, db_unavailable, failed, invalid); _count is the number of batches', labelNames: ['outcome'], apps: ['loader'], buckets: BATCH_BUCKETS }),
  deadLetters: def({ type: 'counter', name: 'fieldsync_dead_letters_total', help: 'Jobs dead-lettered (attempts spent, unreadable webhook bodies, jobs that kept killing loaders), by source', labelNames: ['source'], apps: ['loader'] }),
  poisonRecords: def({ type: 'counter', name: 'fieldsync_poison_records_total', help: 'Records the database refused for good, counted when their job is dead-lettered', labelNames: ['source', 'form'], apps: ['loader'] }),
  outageWaits: def({ type: 'counter', name: 'fieldsync_db_outage_waits_total', help: 'Times an ingest batch (loader) or a sync run (poller) was put back to wait for an unreachable database, attempts not spent', labelNames: [], apps: ['loader', 'poller'] }),
  // poller
  syncRuns: def({ type: 'counter', name: 'fieldsync_sync_runs_total', help: 'Polls, sweeps, backfills and form discoveries, by outcome (ok, failed, auth_failed, skipped, paused)', labelNames: ['source', 'form', 'mode', 'outcome'], apps: ['poller'] }),
  syncRunDuration: def({ type: 'histogram', name: 'fieldsync_sync_run_duration_seconds', help: 'Duration of sync runs by source, mode and outcome (no form label: bounded series count)', labelNames: ['source', 'mode', 'outcome'], apps: ['poller'], buckets: RUN_BUCKETS }),
  recordsFetched: def({ type: 'counter', name: 'fieldsync_records_fetched_total', help: 'Records read from the source (a sweep counts the records it checked), by source, form and mode', labelNames: ['source', 'form', 'mode'], apps: ['poller'] }),
  httpRequests: def({ type: 'counter', name: 'fieldsync_source_http_requests_total', help: 'HTTP requests to the sources (each retry counted), by source and status code; status "error" = no response (timeout, refused connection)', labelNames: ['source', 'status'], apps: ['poller'] }),
  loginFailures: def({ type: 'counter', name: 'fieldsync_source_login_failures_total', help: 'Runs the source refused our credentials for (wrong token or password, revoked access)', labelNames: ['source'], apps: ['poller'] }),
  freshness: def({ type: 'gauge', name: 'fieldsync_form_last_success_age_seconds', help: 'Seconds since the last successful poll, sweep or backfill of a form finished (from SyncRun, read on scrape)', labelNames: ['source', 'form'], apps: ['poller'] }),
  // loader and poller
  queueJobs: def({ type: 'gauge', name: 'fieldsync_queue_jobs', help: 'Jobs per BullMQ queue and state (waiting, active, delayed, prioritized, failed, completed), read on scrape', labelNames: ['queue', 'state'], apps: ['loader', 'poller'] }),
} as const satisfies Record<string, MetricDef>;

export type MetricKey = keyof typeof METRICS;

/** Every exported metric name (histograms by their base name, without _bucket/_sum/_count). */
export const METRIC_NAMES: readonly string[] = Object.values(METRICS).map((m) => m.name);

/** `fieldsync_x_bucket` → `fieldsync_x` when fieldsync_x is a histogram (or the name itself). */
export function baseMetricName(name: string): string {
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  return m && Object.values(METRICS).some((d) => d.type === 'histogram' && d.name === m[1]) ? m[1]! : name;
}

/** fieldsync_* names in PromQL (or any) text, histogram suffixes stripped, deduplicated. */
export function metricNamesIn(text: string): string[] {
  return [...new Set([...text.matchAll(/\bfieldsync_[a-z_]+/g)].map((m) => baseMetricName(m[0])))].sort();
}

/** A markdown document's metrics section: from a heading containing "metrics" to the next heading as high (or '' without one). */
export function markdownMetricsSection(text: string): string {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => /^#{1,6} .*metrics/i.test(l));
  if (start < 0) return '';
  const level = /^#+/.exec(lines[start]!)![0].length;
  const end = lines.findIndex((l, i) => i > start && new RegExp(`^#{1,${level}} `).test(l));
  return lines.slice(start, end < 0 ? undefined : end).join('\n');
}
