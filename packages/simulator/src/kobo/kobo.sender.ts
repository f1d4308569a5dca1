import got from 'got';

/*
 * A Kobo REST Service, as kpi sends it. The real server refuses loopback and
 * private targets, so tests and the demo deliver with this instead.
 */

/** Kobo's waits before POSTs 2..5 (each a random wait up to the value, Celery's full jitter). */
export const KOBO_RETRY_DELAYS_MS = [60_000, 120_000, 240_000, 480_000];

export interface KoboRestService {
  /** Endpoint the project posts to. */
  url: string;
  /** HTTP Basic credentials (the only auth Kobo offers besides custom headers). */
  auth?: { username: string; password: string };
  /** Custom headers set on the REST Service. */
  headers?: Record<string, string>;
  /** Hook uid, shown in the User-Agent. */
  hookUid?: string;
  /** Server domain, shown in the User-Agent. Default `kf.kobotoolbox.org`. */
  domain?: string;
  /** A field subset: only these keys are sent (which drops `_id` and `meta/rootUuid` unless listed). */
  fields?: string[];
  /** `xml`: the submission XML as Kobo stores it ({@link koboSubmissionXml}), `Content-Type: application/xml`. Default `json`. */
  exportType?: 'json' | 'xml';
  /** A JSON `payload_template` with `%SUBMISSION%` where the record goes, e.g. `{"source": "kobo", "submission": %SUBMISSION%}`. */
  payloadTemplate?: string;
  /** Waits before each retry; their count + 1 is the number of POSTs. Default {@link KOBO_RETRY_DELAYS_MS}. */
  retryDelaysMs?: number[];
  /** Draw each wait uniformly in [0, delay] as Kobo does (default), or wait exactly `delay`. */
  jitter?: boolean;
  /** Per-POST timeout; a timeout is retried. Default 30 s. */
  timeoutMs?: number;
}

export interface KoboDeliveryAttempt {
  at: Date;
  /** HTTP status, when the target answered. */
  status?: number;
  /** Network error code (`ETIMEDOUT`, `ECONNREFUSED`, …), when it did not. */
  error?: string;
  /** First 500 characters of the response body (Kobo's hook log keeps it). */
  body?: string;
}

export interface KoboDeliveryResult {
  ok: boolean;
  attempts: KoboDeliveryAttempt[];
  /** Status of the last attempt, when there was a response. */
  status?: number;
  /** Why it failed, when it did. */
  error?: string;
}

const RETRY_STATUS = new Set([502, 503, 504]);

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new Error('aborted'));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new Error('aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * POSTs one submission like a Kobo REST Service: `application/json`, the bare
 * record as body, Basic auth and custom headers if set. Retries only on
 * 502/503/504 or a timeout; any other status, a refused connection or another
 * network error fails at once. `record` may be a function: Kobo re-reads the
 * submission at each attempt, so a retry can carry an edited version (and a
 * deleted one fails the delivery).
 */
export async function sendKoboRestService(
  record: Record<string, unknown> | (() => Record<string, unknown> | undefined),
  service: KoboRestService,
  opts: { signal?: AbortSignal } = {},
): Promise<KoboDeliveryResult> {
  const delays = service.retryDelaysMs ?? KOBO_RETRY_DELAYS_MS;
  const xml = service.exportType === 'xml';
  const headers: Record<string, string> = {
    ...service.headers,
    'content-type': xml ? 'application/xml' : 'application/json',
    'user-agent': `KoboToolbox external service - ${service.domain ?? 'kf.kobotoolbox.org'} #${service.hookUid ?? 'hSimulatorRestService00'}`,
  };
  if (service.auth) headers.authorization = `Basic ${Buffer.from(`${service.auth.username}:${service.auth.password}`).toString('base64')}`;
  const attempts: KoboDeliveryAttempt[] = [];
  const fail = (error: string): KoboDeliveryResult => ({ ok: false, attempts, status: attempts.at(-1)?.status, error });

  for (let i = 0; ; i++) {
    const current = typeof record === 'function' ? record() : record;
    if (!current) return fail('submission no longer exists');
    const payload = service.fields ? Object.fromEntries(service.fields.filter((f) => f in current).map((f) => [f, current[f]])) : current;
    // kpi: the template's placeholder replaced by the JSON-encoded record; the XML export ignores templates.
    const body = xml ? koboSubmissionXml(payload) : service.payloadTemplate ? service.payloadTemplate.replace('%SUBMISSION%', JSON.stringify(payload)) : JSON.stringify(payload);
    const attempt: KoboDeliveryAttempt = { at: new Date() };
    attempts.push(attempt);
    let retryable: boolean;
    try {
      const res = await got.post(service.url, {
        body,
        headers,
        timeout: { request: service.timeoutMs ?? 30_000 },
        retry: { limit: 0 },
        throwHttpErrors: false,
        followRedirect: false,
        signal: opts.signal,
      });
      attempt.status = res.statusCode;
      attempt.body = res.body.slice(0, 500);
      if (res.statusCode >= 200 && res.statusCode < 300) return { ok: true, attempts, status: res.statusCode };
      retryable = RETRY_STATUS.has(res.statusCode);
    } catch (e) {
      const err = e as { code?: string; name?: string; message: string };
      attempt.error = err.code ?? err.name ?? 'ERROR';
      if (opts.signal?.aborted) return fail('aborted');
      retryable = err.code === 'ETIMEDOUT';
    }
    const why = attempt.status !== undefined ? `HTTP ${attempt.status}` : attempt.error!;
    if (!retryable) return fail(`${why}: not retried`);
    const delay = delays[i];
    if (delay === undefined) return fail(`${why}: gave up after ${attempts.length} attempts`);
    try {
      await sleep(service.jitter === false ? delay : Math.random() * delay, opts.signal);
    } catch {
      return fail('aborted');
    }
  }
}

const escapeXml = (v: string) => v.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

type XmlTree = Map<string, XmlTree | string | XmlTree[]>;

/** The record's answers as an element tree: `a/b` keys nest, a repeat's entries become repeated elements. */
function xmlTree(record: Record<string, unknown>, prefix: string): XmlTree {
  const tree: XmlTree = new Map();
  for (const [k, v] of Object.entries(record)) {
    // `_id`, `_submission_time`, `_attachments`, ...: kept by Kobo's database, not in the instance XML.
    if (!prefix && k.startsWith('_') && k !== '__version__') continue;
    const parts = (prefix ? k.slice(prefix.length + 1) : k).split('/');
    let node = tree;
    for (const p of parts.slice(0, -1)) {
      let next = node.get(p);
      if (!(next instanceof Map)) node.set(p, (next = new Map()));
      node = next;
    }
    const last = parts.at(-1)!;
    if (Array.isArray(v)) node.set(last, v.map((e) => xmlTree(e as Record<string, unknown>, k)));
    else if (v !== null && v !== undefined) node.set(last, String(v));
  }
  return tree;
}

function xmlLines(tree: XmlTree, indent: string, out: string[]): void {
  for (const [name, v] of tree) {
    if (typeof v === 'string') out.push(`${indent}<${name}>${escapeXml(v)}</${name}>`);
    else for (const t of Array.isArray(v) ? v : [v]) {
      out.push(`${indent}<${name}>`);
      xmlLines(t, `${indent}  `, out);
      out.push(`${indent}</${name}>`);
    }
  }
}

/**
 * A submission as kpi's REST Service sends it with `export_type=xml`: the
 * instance XML (pretty-printed, with a declaration), root element = the asset
 * uid with `id` and `version` attributes, groups as nested elements, repeats
 * as repeated elements, `meta/instanceID`. No `_id`, `_submission_time` or
 * other database fields: they are not part of the instance.
 */
export function koboSubmissionXml(record: Record<string, unknown>): string {
  const uid = String(record._xform_id_string ?? 'data');
  const version = record.__version__ === undefined ? '' : ` version="${escapeXml(String(record.__version__))}"`;
  const out = [`<?xml version='1.0' encoding='UTF-8'?>`, `<${uid} xmlns:jr="http://openrosa.org/javarosa" xmlns:orx="http://openrosa.org/xforms" id="${uid}"${version}>`];
  xmlLines(xmlTree(record, ''), '  ', out);
  out.push(`</${uid}>`);
  return `${out.join('\n')}\n`;
}
