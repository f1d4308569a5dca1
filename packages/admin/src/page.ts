/** The server-rendered status page: what the JSON API says, for a person, with the actions as plain forms. */
import type { DeadLetterDetail, DeadLetterSummary, FormStatus, StatusResponse, SyncRun } from './schemas.ts';
import { esc, layout } from './html.ts';
import type { AdminLocals } from './auth.ts';

export const REFRESH_S = 15;

function ago(iso: string | null, now: number): string {
  if (!iso) return '<span class="muted">never</span>';
  const s = Math.round((now - Date.parse(iso)) / 1000);
  const rel = Math.abs(s) < 60 ? `${Math.abs(s)} s` : Math.abs(s) < 3600 ? `${Math.round(Math.abs(s) / 60)} min` : `${(Math.abs(s) / 3600).toFixed(1)} h`;
  return `<time datetime="${esc(iso)}" title="${esc(iso)}">${s >= 0 ? `${rel} ago` : `in ${rel}`}</time>`;
}

function run(r: SyncRun | null, now: number): string {
  if (!r) return '<span class="muted">none</span>';
  const cls = r.outcome === 'ok' ? 'ok' : r.outcome === 'running' || r.outcome === 'skipped' ? 'muted' : 'bad';
  const dur = r.durationMs === null ? 'running' : `${(r.durationMs / 1000).toFixed(1)} s`;
  return `${ago(r.startedAt, now)} <span class="${cls}">${esc(r.outcome)}</span><br><span class="muted">${esc(r.mode)} · fetched ${r.fetched} · enqueued ${r.enqueued} · ${dur}</span>`;
}

function csrfInput(a: AdminLocals) {
  return `<input type="hidden" name="_csrf" value="${esc(a.csrf)}">`;
}

function actions(base: string, f: FormStatus, a: AdminLocals): string {
  if (a.role !== 'admin') return '<span class="muted">read-only</span>';
  const btn = (mode: string, label: string, confirm?: string) =>
    `<form class="inline" method="post" action="${esc(base)}/status/sync"${confirm ? ` onsubmit="return confirm(${esc(JSON.stringify(confirm))})"` : ''}>${csrfInput(a)}<input type="hidden" name="sourceId" value="${esc(f.sourceId)}"><input type="hidden" name="formId" value="${esc(f.formId)}"><input type="hidden" name="mode" value="${mode}"><button type="submit" data-action="${mode}">${label}</button></form>`;
  return btn('poll', 'Sync now') + btn('sweep', 'Sweep now') + btn('backfill', 'Backfill', `Backfill ${f.sourceId}/${f.formId}? This re-reads the whole form from the source.`);
}

export function statusPage(base: string, s: StatusResponse, runs: SyncRun[], dead: { items: DeadLetterSummary[]; total: number }, a: AdminLocals, msg?: string): string {
  const now = Date.now();
  const rows = s.sources
    .flatMap((src) =>
      (src.forms.length ? src.forms : [null]).map((f) => {
        if (!f) return `<tr data-source="${esc(src.id)}"><td>${esc(src.id)}</td><td>${esc(src.kind)}</td><td colspan="10" class="muted">no forms found yet${src.lastDiscovery ? ` (discovery: ${esc(src.lastDiscovery.outcome)} ${esc(src.lastDiscovery.error ?? '')})` : ''}</td></tr>`;
        return `<tr data-source="${esc(f.sourceId)}" data-form="${esc(f.formId)}">
<td>${esc(f.sourceId)}</td><td>${esc(f.kind)}</td><td><code>${esc(f.formId)}</code></td>
<td>${run(f.lastPoll, now)}</td><td>${run(f.lastSweep, now)}</td><td>${ago(f.lastSuccessAt, now)}</td>
<td class="err ${f.currentError ? 'bad' : ''}">${f.currentError ? esc(f.currentError.slice(0, 400)) : '<span class="ok">none</span>'}${f.running ? `<br><span class="muted">running since ${ago(f.running.startedAt, now)}</span>` : ''}</td>
<td><code>${esc(f.cursor ? JSON.stringify(f.cursor) : '—')}</code></td>
<td class="live">${f.rows.live}</td><td class="deleted">${f.rows.deleted}</td><td class="dead">${f.deadLetters}</td>
<td>poll ${ago(f.nextRun.poll, now)}<br>sweep ${ago(f.nextRun.sweep, now)}</td>
<td>${actions(base, f, a)}</td></tr>`;
      }),
    )
    .join('\n');
  const runRows = runs
    .map((r) => `<tr class="run" data-run="${esc(r.id)}"><td>${esc(r.id)}</td><td>${esc(r.sourceId)}</td><td><code>${esc(r.formId)}</code></td><td>${esc(r.mode)}</td><td class="${r.outcome === 'ok' ? 'ok' : r.outcome === 'running' ? 'muted' : 'bad'}">${esc(r.outcome)}</td><td>${ago(r.startedAt, now)}</td><td>${r.durationMs === null ? '—' : `${(r.durationMs / 1000).toFixed(1)} s`}</td><td>${r.fetched}</td><td>${r.enqueued}</td><td class="err">${esc(r.error?.slice(0, 300) ?? '')}</td></tr>`)
    .join('\n');
  const deadRows = dead.items
    .map((d) => `<tr class="dead-letter" data-id="${esc(d.id)}"><td><a href="${esc(base)}/status/dead-letters/${esc(d.id)}">#${esc(d.id)}</a></td><td>${esc(d.sourceId ?? '')}</td><td><code>${esc(d.formId ?? '')}</code></td><td>${esc(d.jobName)}</td><td>${d.records}</td><td>${ago(d.failedAt, now)}</td><td class="err">${esc(d.error.slice(0, 300))}</td></tr>`)
    .join('\n');
  const replayAll = a.role === 'admin' && dead.total > 0
    ? `<form class="inline" method="post" action="${esc(base)}/status/replay" onsubmit="return confirm('Replay every dead letter?')">${csrfInput(a)}<button type="submit" data-action="replay-all">Replay all dead letters</button></form>`
    : '';
  const body = `<h1>fieldsync status</h1>
<nav><a href="${esc(base)}/status">Status</a><a href="${esc(base)}/queues">Queues (Bull Board)</a><a href="${esc(base)}/api/docs">API reference</a><a href="${esc(base)}/api/openapi.json">openapi.json</a>
<span class="muted">signed in as ${esc(a.user)}${a.role === 'readonly' ? ' (read-only)' : ''} · refreshes every ${REFRESH_S} s · ${esc(s.generatedAt)}</span></nav>
${msg ? `<p id="flash"><b>${esc(msg)}</b></p>` : ''}
<h2>Sources and forms</h2>
<table id="forms"><thead><tr><th>Source</th><th>Kind</th><th>Form</th><th>Last poll</th><th>Last sweep</th><th>Last success</th><th>Current error</th><th>Cursor</th><th>Rows live</th><th>Rows deleted</th><th>Dead letters</th><th>Next run</th><th>Actions</th></tr></thead><tbody>${rows}</tbody></table>
<h2>Dead letters <span id="dead-total">${dead.total}</span>${s.queueOnlyDeadLetters ? ` <span class="muted">(+${s.queueOnlyDeadLetters} only on the queue)</span>` : ''}</h2>
${replayAll}
<table id="dead-letters"><thead><tr><th>Id</th><th>Source</th><th>Form</th><th>Job</th><th>Records</th><th>Failed</th><th>Error</th></tr></thead><tbody>${deadRows || '<tr><td colspan="7" class="muted">none</td></tr>'}</tbody></table>
<h2>Recent runs</h2>
<table id="runs"><thead><tr><th>Id</th><th>Source</th><th>Form</th><th>Mode</th><th>Outcome</th><th>Started</th><th>Duration</th><th>Fetched</th><th>Enqueued</th><th>Error</th></tr></thead><tbody>${runRows || '<tr><td colspan="10" class="muted">none</td></tr>'}</tbody></table>`;
  return layout('fieldsync status', body, { refreshS: REFRESH_S });
}

export function deadLetterPage(base: string, d: DeadLetterDetail, a: AdminLocals): string {
  const replay = a.role === 'admin' && !d.replayedAt
    ? `<form method="post" action="${esc(base)}/status/replay">${csrfInput(a)}<input type="hidden" name="id" value="${esc(d.id)}"><button type="submit" data-action="replay">Replay this dead letter</button></form>`
    : '';
  return layout(`dead letter ${d.id}`, `<h1>Dead letter #${esc(d.id)}</h1><p><a href="${esc(base)}/status">← status</a></p>
<table><tr><th>Source / form</th><td>${esc(d.sourceId ?? '')} / <code>${esc(d.formId ?? '')}</code></td></tr><tr><th>Job</th><td>${esc(d.queue)} · ${esc(d.jobName)} · ${esc(d.jobId ?? '')}</td></tr>
<tr><th>Attempts</th><td>${d.attempts}</td></tr><tr><th>Failed at</th><td>${esc(d.failedAt)}</td></tr><tr><th>Replayed</th><td>${esc(d.replayedAt ?? 'no')}</td></tr><tr><th>Records</th><td>${d.records}</td></tr></table>
<h2>Error</h2><pre id="error">${esc(d.error)}</pre>${replay}<h2>Payload</h2><pre id="payload">${esc(JSON.stringify(d.payload, null, 2))}</pre>`);
}

export function errorPage(status: number, message: string): string {
  return layout('fieldsync status', `<h1>fieldsync status</h1><p class="bad">${status === 503 ? 'Unavailable' : 'Error'}: ${esc(message)}</p><p class="muted">This page retries by itself.</p>`, { refreshS: REFRESH_S });
}
