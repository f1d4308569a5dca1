import { Counter, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics of the ingress; one registry per app instance (tests create several). */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    requests: new Counter({ name: 'fieldsync_webhook_requests_total', help: 'Webhook requests by source and HTTP status', labelNames: ['source', 'status'], registers: [registry] }),
    enqueued: new Counter({ name: 'fieldsync_webhook_submissions_enqueued_total', help: 'Submissions durably enqueued from webhooks', labelNames: ['source'], registers: [registry] }),
    unparsed: new Counter({ name: 'fieldsync_webhook_unparsed_total', help: 'Authenticated webhook bodies no parser understood, kept as dead letters', labelNames: ['source'], registers: [registry] }),
    errors: new Counter({ name: 'fieldsync_webhook_errors_total', help: 'Webhook requests refused or failed, by reason', labelNames: ['source', 'reason'], registers: [registry] }),
  };
}
export type Metrics = ReturnType<typeof createMetrics>;
