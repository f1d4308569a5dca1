/**
 * The example alert rules, the Grafana dashboard and the metrics docs name
 * only metrics that exist (a renamed metric would leave an alert that never
 * fires), and the docs list every metric there is.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { METRIC_NAMES, markdownMetricsSection, metricNamesIn } from './definitions.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const read = (p: string) => readFileSync(`${ROOT}${p}`, 'utf8');

interface Rule { alert?: string; record?: string; expr: string; for?: string; labels?: Record<string, string>; annotations?: Record<string, string> }

describe('deploy/prometheus/alerts.yml', () => {
  const doc = parse(read('deploy/prometheus/alerts.yml')) as { groups: { name: string; rules: Rule[] }[] };
  const rules = doc.groups.flatMap((g) => g.rules);

  it('is a Prometheus rule file with the alerts operators need', () => {
    expect(doc.groups.length).toBeGreaterThan(0);
    for (const r of rules) {
      expect(r.alert, JSON.stringify(r)).toMatch(/^[A-Za-z_][A-Za-z0-9_]*$/);
      expect(typeof r.expr).toBe('string');
      if (r.for) expect(r.for).toMatch(/^\d+[smhd]$/);
      expect(r.annotations?.summary).toBeTruthy();
    }
    const byMetric = (m: string) => rules.filter((r) => r.expr.includes(m)).map((r) => r.alert);
    expect(byMetric('fieldsync_form_last_success_age_seconds')).toContain('FieldsyncFormStale');
    expect(byMetric('fieldsync_dead_letters_total')).toContain('FieldsyncDeadLettersGrowing');
    expect(byMetric('fieldsync_source_login_failures_total')).toContain('FieldsyncSourceLoginFailing');
    expect(byMetric('fieldsync_source_http_requests_total')).toContain('FieldsyncSourceHttpErrors');
    expect(byMetric('up{job="fieldsync-loader"}')).toContain('FieldsyncLoaderDown');
  });

  it('names only metrics that exist', () => {
    const named = metricNamesIn(rules.map((r) => r.expr).join('\n'));
    expect(named.length).toBeGreaterThanOrEqual(8);
    expect(named.filter((n) => !METRIC_NAMES.includes(n))).toEqual([]);
  });
});

describe('deploy/grafana/fieldsync.json', () => {
  const dash = JSON.parse(read('deploy/grafana/fieldsync.json')) as { title: string; uid: string; panels: { title: string; targets: { expr: string }[] }[] };
  const exprs = dash.panels.flatMap((p) => p.targets.map((t) => t.expr));

  it('is a dashboard whose every panel queries something', () => {
    expect(dash.uid).toBe('fieldsync');
    for (const p of dash.panels) expect(p.targets.length, p.title).toBeGreaterThan(0);
  });

  it('names only metrics that exist, and shows every one of them', () => {
    const named = metricNamesIn(exprs.join('\n'));
    expect(named.filter((n) => !METRIC_NAMES.includes(n))).toEqual([]);
    expect(METRIC_NAMES.filter((n) => !named.includes(n))).toEqual([]);
  });
});

describe('metrics documentation', () => {
  it('docs/metrics.md lists exactly the metrics there are', () => {
    const named = metricNamesIn(read('docs/metrics.md'));
    expect(named.filter((n) => !METRIC_NAMES.includes(n))).toEqual([]);
    expect(METRIC_NAMES.filter((n) => !named.includes(n))).toEqual([]);
  });

  it("the README's metrics section names every metric, and only metrics that exist", () => {
    const names = metricNamesIn(markdownMetricsSection(read('README.md')));
    expect(names.filter((n) => !METRIC_NAMES.includes(n))).toEqual([]);
    // An empty or missing section would pass the check above with nothing checked.
    expect(METRIC_NAMES.filter((n) => !names.includes(n))).toEqual([]);
  });

  it('the name extraction strips histogram suffixes and finds misspellings', () => {
    expect(metricNamesIn('rate(fieldsync_ingest_batch_duration_seconds_bucket[5m]) + fieldsync_sync_run_duration_seconds_count')).toEqual([
      'fieldsync_ingest_batch_duration_seconds', 'fieldsync_sync_run_duration_seconds',
    ]);
    expect(metricNamesIn('fieldsync_records_loded_total').filter((n) => !METRIC_NAMES.includes(n))).toEqual(['fieldsync_records_loded_total']);
  });
});
