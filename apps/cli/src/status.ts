/**
 * `fieldsync status`: the admin status (packages/admin collectStatus, the same
 * numbers as the /admin page) as a terminal table, one row per source and form.
 */
import { parseArgs } from 'node:util';
import { openDatabase } from '@fieldsync/db';
import { statusResponse } from '@fieldsync/admin/status';
import type { SourceStatus, SyncRun } from '@fieldsync/admin';
import { createLogger, safeUrl } from '@fieldsync/logger';
import { loadCommandSettings, openQueues, queueSettings } from '@fieldsync/sync';

export const STATUS_USAGE = `usage: fieldsync status [--json]

One row per source and form: kind, last poll and last sweep (when, outcome,
fetched/enqueued, duration), last success, rows live/deleted, dead letters
not yet replayed, next poll, cursor; the current error, if any, under the row.
Read from the database (SyncRun, SyncState, Submission, DeadLetter) and the
job schedulers in Redis. --json prints the same as GET /admin/api/status.
Exit 0 ok, 1 the database cannot be read, 2 usage or config error.`;

/** "3m ago", "in 42s", "2h ago". */
export function ago(iso: string | null, now = Date.now()): string {
  if (!iso) return '-';
  const s = Math.round((now - Date.parse(iso)) / 1000);
  const abs = Math.abs(s);
  const span = abs < 90 ? `${abs}s` : abs < 5400 ? `${Math.round(abs / 60)}m` : abs < 129_600 ? `${Math.round(abs / 3600)}h` : `${Math.round(abs / 86_400)}d`;
  return s >= 0 ? `${span} ago` : `in ${span}`;
}

const duration = (ms: number | null) => (ms === null ? 'running' : ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 1000)}s`);
/** "2m ago ok 120/120 1.3s" */
const runCell = (r: SyncRun | null, now: number) => (r ? `${ago(r.startedAt, now)} ${r.outcome} ${r.fetched}/${r.enqueued} ${duration(r.durationMs)}` : '-');
const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

export const STATUS_COLUMNS = ['SOURCE/FORM', 'KIND', 'LAST POLL', 'LAST SWEEP', 'LAST OK', 'ROWS live/del', 'DEAD', 'NEXT POLL', 'CURSOR'] as const;

/** The table as lines (no colours: it is often piped or pasted into a ticket). */
export function renderStatus(sources: SourceStatus[], opts: { now?: number; queueOnlyDeadLetters?: number } = {}): string[] {
  const now = opts.now ?? Date.now();
  const rows: { cells: string[]; error?: string }[] = [];
  for (const s of sources) {
    if (s.forms.length === 0) rows.push({ cells: [`${s.id}/*`, s.kind, s.lastDiscovery ? `discovery ${runCell(s.lastDiscovery, now)}` : 'no forms yet', '-', '-', '-', '-', '-', '-'], error: s.lastDiscovery?.error ?? undefined });
    for (const f of s.forms) {
      rows.push({
        cells: [
          `${s.id}/${f.formId}`,
          f.kind,
          runCell(f.lastPoll, now),
          runCell(f.lastSweep, now),
          ago(f.lastSuccessAt, now),
          `${f.rows.live}/${f.rows.deleted}`,
          String(f.deadLetters),
          ago(f.nextRun.poll, now),
          f.cursor ? clip(JSON.stringify(f.cursor), 40) : '-',
        ],
        error: f.currentError ?? undefined,
      });
    }
    if (s.otherDeadLetters) rows.push({ cells: [`${s.id} (no form)`, s.kind, '-', '-', '-', '-', String(s.otherDeadLetters), '-', '-'] });
  }
  const widths = STATUS_COLUMNS.map((h, i) => Math.max(h.length, ...rows.map((r) => r.cells[i]!.length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  const out = [line(STATUS_COLUMNS)];
  for (const r of rows) {
    out.push(line(r.cells));
    if (r.error) out.push(`  ✗ ${clip(r.error.replace(/\s+/g, ' '), 200)}`);
  }
  if (opts.queueOnlyDeadLetters) out.push(`${opts.queueOnlyDeadLetters} dead letter(s) only on the dead-letter queue (the database was down when they failed)`);
  return out;
}

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: { json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } } }));
  } catch (err) {
    console.error(`status: ${(err as Error).message}\n${STATUS_USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(STATUS_USAGE);
    return 0;
  }
  const settings = loadCommandSettings('status');
  if (!settings) return 2;
  const { env, config } = settings;
  const log = createLogger('status', { level: 'silent' });
  const db = openDatabase(env.DATABASE_URL, { poolSize: 2, connectTimeoutMs: 5_000 });
  const q = openQueues(queueSettings(env), 'producer', log);
  try {
    // Without Redis the table is still worth having: only the next runs are unknown.
    const redisUp = await new Promise<boolean>((resolve) => {
      if (q.redis.status === 'ready') return resolve(true);
      const timer = setTimeout(() => resolve(false), 5_000);
      q.redis.once('ready', () => (clearTimeout(timer), resolve(true)));
    });
    if (!redisUp) q.redis.disconnect();
    const poll = redisUp ? q.queues.poll : ({ getJobSchedulers: async () => [] } as unknown as Parameters<typeof statusResponse>[0]['queues']['poll']);
    const deadLetter = redisUp ? q.queues.deadLetter : undefined;
    const status = await statusResponse({ db, queues: { poll, deadLetter }, config });
    if (values.json) console.log(JSON.stringify(status, null, 2));
    else {
      for (const l of renderStatus(status.sources, { queueOnlyDeadLetters: status.queueOnlyDeadLetters })) console.log(l);
      if (!redisUp) console.log(`! Redis at ${safeUrl(env.REDIS_URL)} unreachable: next runs unknown (fix REDIS_URL)`);
    }
    return 0;
  } catch (err) {
    console.error(`status: cannot read the status from the database: ${(err as Error).message.split('\n')[0]} (check DATABASE_URL, or run ./fieldsync check)`);
    return 1;
  } finally {
    await q.close().catch(() => {});
    await db.close().catch(() => {});
  }
}
