/**
 * `fieldsync check`: validates the environment and the config, then TRIES every
 * source (auth + one small page of each form), the database (connect +
 * migrations) and Redis (PING). One line per check with a verdict, the reason
 * and the key to fix; the exit code says whether everything passed.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { Redis } from 'ioredis';
import { ConfigError, loadConfig, loadEnv, type FieldsyncConfig, type InfraEnv, type SourceConfig } from '@fieldsync/config';
import { AuthError, createConnector, credentialKey } from '@fieldsync/connectors';
import { dialectOf, loadMigrations, openDatabase } from '@fieldsync/db';
import { safeUrl } from '@fieldsync/logger';
import { isAccessDenied } from '@fieldsync/sync';

export type Verdict = 'ok' | 'warn' | 'fail';
export interface CheckLine {
  verdict: Verdict;
  /** "config", "source kobo-eu", "database", "redis". */
  subject: string;
  reason: string;
  /** What to change: "KOBO_TOKEN (sources[0].token)". */
  fix?: string;
}

const MARK: Record<Verdict, string> = { ok: '✓', warn: '!', fail: '✗' };
export const formatLine = (l: CheckLine): string => `${MARK[l.verdict]} ${l.subject}: ${l.reason}${l.fix ? ` — fix ${l.fix}` : ''}`;

/** Each check gives up after this long: an operator waits for an answer, not for retries. */
const CHECK_TIMEOUT_MS = 20_000;
/** One quick retry for a flaky network; a refused credential is never retried (AuthError). */
const CHECK_HTTP = { timeoutMs: 10_000, retries: 1, backoffMs: 500, maxBackoffMs: 1_000 };

export const CHECK_USAGE = `usage: fieldsync check

Validates the environment and the config file (FIELDSYNC_CONFIG), then tries
every source (log in, read one record of each form), the database (connect,
migrations applied) and Redis (PING). Prints one line per check:
  ✓ passed   ! works, but look at it   ✗ failed, with the key or variable to fix
Exit 0 when nothing failed, 1 when a check failed, 2 when the config or the
environment is invalid.`;

function withTimeout<T>(p: Promise<T>, what: string, ms = CHECK_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** The `${VAR}` names written at `at` (a dotted path, `a/b` for either key) in the raw config. */
function envRefs(raw: unknown, at: string[]): string[] {
  const out = new Set<string>();
  const walk = (node: unknown, keys: string[]): void => {
    if (keys.length === 0) {
      if (typeof node === 'string') for (const m of node.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)) out.add(m[1]!);
      return;
    }
    if (!node || typeof node !== 'object') return;
    const [head, ...rest] = keys;
    for (const k of head!.split('/')) walk((node as Record<string, unknown>)[k], rest);
  };
  walk(raw, at);
  return [...out];
}

function readRaw(file: string): unknown {
  try {
    const text = readFileSync(file, 'utf8');
    return file.endsWith('.json') ? JSON.parse(text) : YAML.parse(text);
  } catch {
    return undefined; // loadConfig reports an unreadable file itself
  }
}

/** "KOBO_TOKEN (sources[0].token)", or the key alone when the file holds no `${VAR}` there. */
function fixOf(raw: unknown, index: number, key: string): string {
  const refs = envRefs((raw as { sources?: unknown[] } | undefined)?.sources?.[index], key.split('.'));
  const at = `sources[${index}].${key}`;
  return refs.length ? `${refs.join('/')} (${at})` : at;
}

/** An error from got, node or a driver, as a short reason. */
function describe(err: unknown): string {
  const e = err as { code?: string; message?: string; response?: { statusCode?: number; statusMessage?: string } };
  if (e.response?.statusCode) return `HTTP ${e.response.statusCode}${e.response.statusMessage ? ` ${e.response.statusMessage}` : ''}`;
  if (e.code && /^E[A-Z]+/.test(e.code)) return `${e.code}${e.message && !e.message.includes(e.code) ? `: ${e.message}` : ''}`.replace(/\s+/g, ' ');
  return (e.message ?? String(err)).split('\n')[0]!;
}

/** ECONNREFUSED, ENOTFOUND, ETIMEDOUT…: from the error or its causes (connectors wrap got's errors), else its message. */
function networkCode(err: unknown): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown; message?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && /^E[A-Z_]+$/.test(e.code)) return e.code;
  }
  return String((err as Error)?.message ?? '').match(/\b(E(?:CONNREFUSED|CONNRESET|NOTFOUND|TIMEDOUT|HOSTUNREACH|NETUNREACH|AI_AGAIN|PROTO))\b/)?.[1];
}

/** `401: {"detail":"Invalid token."}` → `401: Invalid token.` (a JSON error body's message, when it has one). */
function readable(detail: string): string {
  const m = detail.match(/^(\d+(?:\.\d+)?): (\{.*\})$/s);
  if (!m) return detail;
  try {
    const body = JSON.parse(m[2]!) as { detail?: unknown; message?: unknown };
    const text = typeof body.detail === 'string' ? body.detail : typeof body.message === 'string' ? body.message : undefined;
    return text ? `${m[1]}: ${text}` : detail;
  } catch {
    return detail; // not JSON after all: show it as sent
  }
}

/** Logs in and reads the first record of every form (Kobo `limit=1`, ODK `$top=1`). */
export async function checkSource(source: SourceConfig, index: number, raw: unknown): Promise<CheckLine> {
  const subject = `source ${source.id}`;
  const probe = createConnector({ ...source, pageSize: 1, http: CHECK_HTTP } as SourceConfig);
  const credential =
    source.kind === 'kobo' ? 'token'
    : source.kind === 'rest' ? credentialKey(source.auth)
    : source.kind === 'socrata' ? 'appToken'
    : 'session' in source.auth ? 'auth.session.email/password' : 'auth.basic.email/password';
  let form: string | undefined;
  try {
    const forms = await withTimeout(probe.listForms(), 'listing forms');
    if (forms.length === 0) return { verdict: 'warn', subject, reason: `logged in, but ${source.kind === 'odk' ? `project ${source.projectId} has` : 'the config lists'} no forms`, fix: `sources[${index}].forms` };
    let records = 0;
    for (form of forms) {
      // The first page only: breaking out of the walk stops it.
      await withTimeout(
        (async () => {
          for await (const page of probe.pull(form!, null, { via: 'poll' })) {
            records += page.submissions.length;
            break;
          }
        })(),
        `reading form ${form}`,
      );
    }
    form = undefined;
    return { verdict: 'ok', subject, reason: `${source.kind} at ${source.baseUrl}: ${credential === 'token' ? 'token' : 'login'} accepted, ${forms.length} form(s) readable${records ? '' : ' (all empty so far)'}` };
  } catch (err) {
    const where = form ? ` (form ${form})` : '';
    if (err instanceof AuthError) {
      // A 403 on one form: the credential works but lacks access to it.
      if (err.status === 403 && form) return { verdict: 'fail', subject, reason: `${err.what}${where} (${readable(err.detail)})`, fix: `sources[${index}].forms, or the account's access to the form` };
      // "token (and the environment variable it is read from)" → "token": we name that variable.
      return { verdict: 'fail', subject, reason: `${err.what} (${readable(err.detail)})`, fix: fixOf(raw, index, err.credential.split(' ')[0]!) };
    }
    // Connectors wrap got's HTTPError (as `cause`) in a message naming the source.
    type WithResponse = { response?: { statusCode?: number }; cause?: { response?: { statusCode?: number } } };
    const status = (err as WithResponse).response?.statusCode ?? (err as WithResponse).cause?.response?.statusCode;
    if (status === 404 && form) return { verdict: 'fail', subject, reason: `form ${form} not found (HTTP 404 at ${source.baseUrl})`, fix: `sources[${index}].forms${source.kind === 'odk' ? ' or projectId' : ''}` };
    // A network error is the server's, not the form's: name the form only for an HTTP answer.
    const network = status ? undefined : networkCode(err);
    return { verdict: 'fail', subject, reason: network ? `${source.baseUrl} unreachable: ${network}` : `${source.baseUrl} failing${where}: ${describe(err)}`, fix: fixOf(raw, index, 'baseUrl') };
  } finally {
    // Leaves no ODK session behind.
    await probe.close?.().catch(() => {});
  }
}

/** Connects, then compares the applied migrations with the ones this version ships. */
export async function checkDatabase(url: string): Promise<CheckLine> {
  const subject = 'database';
  const db = openDatabase(url, { poolSize: 1, connectTimeoutMs: 5_000 });
  try {
    const table = db.dialect === 'postgresql' ? '"_prisma_migrations"' : '`_prisma_migrations`';
    await withTimeout(db.sql.query('SELECT 1'), 'connecting');
    const schema = db.dialect === 'postgresql' ? 'current_schema()' : 'database()';
    const exists = await db.sql.query<{ n: unknown }>(`SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = ${schema} AND table_name = '_prisma_migrations'`);
    const shipped = await loadMigrations(db.dialect);
    const rows = Number(exists[0]?.n) > 0
      ? await db.sql.query<{ migration_name: string; finished_at: unknown; rolled_back_at: unknown; checksum: string }>(`SELECT migration_name, finished_at, rolled_back_at, checksum FROM ${table}`)
      : [];
    const applied = new Map(rows.filter((r) => r.finished_at && !r.rolled_back_at).map((r) => [r.migration_name, r.checksum]));
    const failed = rows.filter((r) => !r.finished_at && !r.rolled_back_at).map((r) => r.migration_name);
    const changed = shipped.filter((m) => applied.has(m.name) && applied.get(m.name) !== m.checksum).map((m) => m.name);
    const pending = shipped.filter((m) => !applied.has(m.name)).map((m) => m.name);
    const unknown = [...applied.keys()].filter((n) => !shipped.some((m) => m.name === n));
    const at = `${db.dialect} at ${safeUrl(url)}`;
    if (failed.length) return { verdict: 'fail', subject, reason: `${at}: migration ${failed.join(', ')} started but never finished (see _prisma_migrations.logs)`, fix: 'the database by hand, then ./fieldsync migrate' };
    if (changed.length) return { verdict: 'fail', subject, reason: `${at}: applied migration(s) ${changed.join(', ')} differ from this version's files`, fix: 'the deployed version (it does not match this database)' };
    if (unknown.length) return { verdict: 'warn', subject, reason: `${at}: has migration(s) this version does not know (${unknown.join(', ')}): a newer fieldsync migrated it` };
    if (pending.length) return { verdict: 'warn', subject, reason: `${at}: connected, ${pending.length} migration(s) pending (the poller and loader apply them at start, or run ./fieldsync migrate)` };
    return { verdict: 'ok', subject, reason: `${at}: connected, ${shipped.length} migration(s) applied, none pending` };
  } catch (err) {
    const why = isAccessDenied(err) ? `refused us: ${describe(err)}` : `unreachable: ${describe(err)}`;
    return { verdict: 'fail', subject, reason: `${dialectOf(url)} at ${safeUrl(url)} ${why}`, fix: 'DATABASE_URL' };
  } finally {
    await db.close().catch(() => {});
  }
}

export async function checkRedis(url: string): Promise<CheckLine> {
  // No reconnecting and no offline queue: one honest attempt.
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: 5_000, commandTimeout: 5_000, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
  // The socket's own error (ECONNREFUSED) says more than connect()'s "Connection is closed.".
  let socketError: unknown;
  redis.on('error', (err) => (socketError ??= err));
  try {
    await withTimeout(redis.connect(), 'connecting');
    const pong = await redis.ping();
    return { verdict: 'ok', subject: 'redis', reason: `${safeUrl(url)}: ${pong}` };
  } catch (err) {
    return { verdict: 'fail', subject: 'redis', reason: `${safeUrl(url)} unreachable: ${describe(socketError ?? err)}`, fix: 'REDIS_URL' };
  } finally {
    redis.disconnect();
  }
}

/** One line per problem of a ConfigError ("<file>:\n  key: message\n  …"). */
function configLines(err: unknown, subject: string, fixFor: (problem: string) => string | undefined): CheckLine[] {
  const message = (err as Error).message;
  if (!(err instanceof ConfigError)) return [{ verdict: 'fail', subject, reason: message }];
  const [head, ...problems] = message.split('\n');
  if (problems.length === 0) return [{ verdict: 'fail', subject, reason: head!, fix: head!.includes('cannot read') ? 'FIELDSYNC_CONFIG' : undefined }];
  return problems.map((p) => {
    const problem = p.trim().replace(/^(\w+): Invalid input: expected \w+, received undefined$/, '$1 is not set');
    // The file is named once on the config line; the environment has no file.
    return { verdict: 'fail', subject, reason: subject === 'config' ? `${problem} (in ${head!.replace(/:$/, '')})` : problem, fix: fixFor(problem) };
  });
}

export interface CheckReport {
  lines: CheckLine[];
  /** 0 all passed (warnings allowed), 1 a check failed, 2 the environment or config is invalid. */
  exitCode: number;
}

/** Runs every check; calls `onLine` as each line is ready (in a stable order). */
export async function runChecks(env: NodeJS.ProcessEnv = process.env, onLine: (l: CheckLine) => void = () => {}): Promise<CheckReport> {
  const lines: CheckLine[] = [];
  const emit = (l: CheckLine) => (lines.push(l), onLine(l));
  let invalid = false;

  let infra: InfraEnv | undefined;
  try {
    infra = loadEnv(env);
  } catch (err) {
    invalid = true;
    // "DATABASE_URL: Required" → fix DATABASE_URL
    configLines(err, 'environment', (p) => p.split(/[: ]/)[0]).forEach(emit);
  }

  const file = path.resolve(env.FIELDSYNC_CONFIG ?? 'fieldsync.config.yaml');
  let config: FieldsyncConfig | undefined;
  try {
    config = loadConfig(file, env);
    emit({ verdict: 'ok', subject: 'config', reason: `${file}: valid, ${config.sources.length} source(s) (${config.sources.map((s) => s.id).join(', ')})` });
  } catch (err) {
    invalid = true;
    configLines(err, 'config', (p) => {
      const v = p.match(/environment variable (\w+) is not set/);
      return v ? `${v[1]} (${p.split(':')[0]})` : p.split(':')[0];
    }).forEach(emit);
  }

  // The slow parts concurrently; printed in a fixed order.
  const raw = readRaw(file);
  const pending: Promise<CheckLine>[] = [
    ...(config?.sources.map((s, i) => checkSource(s, i, raw)) ?? []),
    ...(infra ? [checkDatabase(infra.DATABASE_URL), checkRedis(infra.REDIS_URL)] : []),
  ];
  for (const p of pending) emit(await p);

  const failed = lines.some((l) => l.verdict === 'fail');
  return { lines, exitCode: invalid ? 2 : failed ? 1 : 0 };
}
