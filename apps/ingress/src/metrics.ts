// The definitions live in @fieldsync/metrics with the loader's and poller's (one table, checked against deploy/).
export { createIngressMetrics as createMetrics, type IngressMetrics as Metrics } from '@fieldsync/metrics';
