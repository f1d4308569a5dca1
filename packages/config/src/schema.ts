import { z } from 'zod';
import ms from 'ms';
import { CronExpressionParser } from 'cron-parser';

/** A secret: must be written as `${ENV_VAR}` in the file and is resolved from the environment. */
export const Secret = z.string().min(1);

/** `ms()` on a duration string; undefined when it is not one. */
function parseMs(v: string): number | undefined {
  try {
    return ms(v as ms.StringValue);
  } catch {
    return undefined; // ms() throws on "" instead of returning undefined
  }
}

const Duration = z
  .union([z.number().int().positive(), z.string()])
  .transform((v, ctx) => {
    if (typeof v === 'number') return v;
    const n = parseMs(v);
    if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0) {
      ctx.addIssue({ code: 'custom', message: `not a duration: "${v}" (use e.g. "30s", "5m", "1h" or milliseconds)` });
      return z.NEVER;
    }
    return n;
  });

/**
 * Kobo's late-record window, in ms: a duration string, or 0. A bare number is
 * refused: `overlap` used to count `_id`s, and 100 read as milliseconds would
 * silently shrink the window.
 */
const KoboOverlap = z.union([z.number(), z.string()]).transform((v, ctx) => {
  if (v === 0 || v === '0') return 0;
  const n = typeof v === 'string' ? parseMs(v) : undefined;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0 || n > 86_400_000) {
    ctx.addIssue({
      code: 'custom',
      message: typeof v === 'number'
        ? `a time window such as "5m" is expected, got the number ${v} (overlap used to count _ids; it is now measured in time)`
        : `not a duration: "${v}" (use e.g. "5m" or "30s", at most "24h")`,
    });
    return z.NEVER;
  }
  return n;
});

/** An issue at `path(i)` for every value that repeats an earlier one: `duplicate <what> "<value>"`. */
function flagDuplicates(ctx: z.RefinementCtx, values: string[], path: (i: number) => (string | number)[], what: string): void {
  const seen = new Set<string>();
  values.forEach((v, i) => {
    if (seen.has(v)) ctx.addIssue({ code: 'custom', path: path(i), message: `duplicate ${what} "${v}"` });
    seen.add(v);
  });
}

const Cron = z.string().refine(
  (v) => {
    try {
      CronExpressionParser.parse(v);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'not a valid cron expression' },
);

/** An IANA time zone name, e.g. "Africa/Nairobi" (checked now, not when the scheduler first fires). */
const TimeZone = z.string().refine(
  (v) => {
    try {
      new Intl.DateTimeFormat('en', { timeZone: v });
      return true;
    } catch {
      return false;
    }
  },
  { message: 'not a known IANA time zone (e.g. "UTC", "Africa/Nairobi")' },
);

/** When a job repeats: a fixed interval or a cron pattern. */
export const Schedule = z
  .object({ every: Duration.optional(), cron: Cron.optional(), tz: TimeZone.optional() })
  .strict()
  .refine((s) => (s.every === undefined) !== (s.cron === undefined), { message: 'give exactly one of "every" or "cron"' });
export type Schedule = z.infer<typeof Schedule>;

/** Network behaviour of a connector: every call has a timeout and a bounded retry. */
export const HttpPolicy = z
  .object({
    timeoutMs: z.number().int().positive().default(30_000),
    retries: z.number().int().min(0).max(20).default(5),
    /** First backoff delay; doubles each attempt, with jitter. */
    backoffMs: z.number().int().positive().default(1_000),
    /** Upper bound for one backoff wait. A server's Retry-After is obeyed as given, up to 10 minutes (longer fails the request). */
    maxBackoffMs: z.number().int().positive().default(60_000),
  })
  .strict();
export type HttpPolicy = z.infer<typeof HttpPolicy>;

/**
 * Where the record sits in a body that wraps it (a Kobo `payload_template` such as
 * `{"source": "x", "submission": %SUBMISSION%}` → `submission`): dot-separated keys.
 */
const RecordPath = z.string().regex(/^[^.]+(\.[^.]+)*$/, 'dot-separated keys, e.g. "submission" or "data.record"').optional();

/** How a webhook sender proves who it is (Kobo REST Services send Basic auth or custom headers), and how its body wraps the record. */
export const WebhookAuth = z.union([
  z.object({ token: Secret, header: z.string().min(1).default('x-fieldsync-token'), recordPath: RecordPath }).strict(),
  z.object({ basic: z.object({ username: z.string().min(1), password: Secret }).strict(), recordPath: RecordPath }).strict(),
  z.object({ hmac: z.object({ secret: Secret, header: z.string().default('x-fieldsync-signature') }).strict(), recordPath: RecordPath }).strict(),
]);
export type WebhookAuth = z.infer<typeof WebhookAuth>;

/** Where attachment files are copied: an S3-compatible bucket, or a local directory. */
export const AttachmentStore = z.union([
  z
    .object({
      s3: z
        .object({
          /** e.g. https://s3.eu-west-1.amazonaws.com or http://minio:9000; default: AWS for `region`. */
          endpoint: z.url().optional(),
          region: z.string().min(1).default('us-east-1'),
          bucket: z.string().min(1),
          /** Key prefix, e.g. "fieldsync/"; keys are <prefix><source>/<form>/<record key>/<file name>. */
          prefix: z.string().default(''),
          /** Path-style URLs (http://host/bucket/key): MinIO and most self-hosted servers need it. */
          pathStyle: z.boolean().default(false),
          /** Default: the AWS SDK's chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, profile, role). */
          accessKeyId: Secret.optional(),
          secretAccessKey: Secret.optional(),
        })
        .strict(),
    })
    .strict(),
  z.object({ dir: z.string().min(1) }).strict(),
]);
export type AttachmentStore = z.infer<typeof AttachmentStore>;

/** Attachments of a source (overrides the top-level `attachments` key by key). */
const SourceAttachments = z.object({ enabled: z.boolean().optional(), store: AttachmentStore.optional() }).strict();

const SourceBase = {
  id: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'lowercase letters, digits, "-" and "_", at most 64'),
  baseUrl: z.url({ protocol: /^https?$/, message: 'Invalid URL (use http:// or https://)' }),
  poll: Schedule.default({ every: 300_000 }),
  /** Edit/delete/restore sweep (full key scan): less often than polls. */
  sweep: Schedule.default({ every: 3_600_000 }),
  pageSize: z.number().int().min(1).max(10_000).default(1000),
  /**
   * Records per ingest job (one transaction). The default is a full Kobo page: each job
   * carries fixed costs (its Redis round trips, a transaction, a COPY and a merge), and
   * 1,000 loaded 15-20 % faster than 500 end to end. A page of big records (long repeats)
   * goes as several smaller jobs of about 4 MB of JSON at most (the poll runner's recordsPerJob).
   */
  batchSize: z.number().int().min(1).max(5_000).default(1000),
  http: HttpPolicy.default(HttpPolicy.parse({})),
  webhook: WebhookAuth.optional(),
  /** Copy this source's attachment files to storage (default: the top-level `attachments`). */
  attachments: SourceAttachments.optional(),
  tables: z
    .object({
      /** Typed analyst tables for this source (the raw Submission rows load either way). */
      enabled: z.boolean().default(true),
      /** formId → name of the form's table (otherwise its title, slugged); kept once chosen. */
      names: z.record(z.string(), z.string().regex(/^[a-z][a-z0-9_]{0,40}$/, 'a table name: lowercase letters, digits and "_", at most 41')).default({}),
      /** One boolean column per choice of every select_multiple question. */
      choiceColumns: z.boolean().default(false),
    })
    .strict()
    .default({ enabled: true, names: {}, choiceColumns: false }),
};

export const KoboSource = z
  .object({
    ...SourceBase,
    kind: z.literal('kobo'),
    token: Secret,
    /** Asset uids. */
    forms: z.array(z.string().min(1)).min(1),
    /**
     * Each poll re-reads the records received this long before the newest one read
     * (a duration, e.g. "5m"; 0 for none): a smaller `_id` can become visible late.
     */
    overlap: KoboOverlap.default(300_000),
  })
  .strict();

export const OdkSource = z
  .object({
    ...SourceBase,
    kind: z.literal('odk'),
    projectId: z.number().int().positive(),
    /**
     * Re-read this much before the cursor: Central stamps a submission when its
     * transaction starts, so one that commits just after we read can carry an
     * earlier time. Re-reads are idempotent.
     */
    overlapMs: z.number().int().min(0).max(3_600_000).default(2_000),
    /** xmlFormIds, or "*" for every form of the project (new forms picked up as published). */
    forms: z.union([z.array(z.string().min(1)).min(1), z.literal('*')]),
    auth: z.union([
      z.object({ session: z.object({ email: z.string().min(1), password: Secret }).strict() }).strict(),
      z.object({ basic: z.object({ email: z.string().min(1), password: Secret }).strict() }).strict(),
    ]),
  })
  .strict()
  .superRefine((s, ctx) => {
    // (an unparsable baseUrl is already reported by its own check)
    if ('basic' in s.auth && URL.canParse(s.baseUrl) && new URL(s.baseUrl).protocol !== 'https:') {
      ctx.addIssue({
        code: 'custom',
        path: ['auth', 'basic'],
        message: 'ODK Central accepts HTTP Basic only over HTTPS; use an https:// baseUrl or session auth',
      });
    }
  });

/** A dot-separated path into a JSON body (`data.items`, `meta.next_cursor`); empty = the body itself. */
const JsonPath = z.string().regex(/^([^.]+(\.[^.]+)*)?$/, 'dot-separated keys, e.g. "data.items"');
const ParamName = z.string().min(1);

/**
 * How a REST endpoint pages. Every style stops at an empty page or when the
 * server says there is no more (no next token / link / URL; a short page for `page` and `offset`).
 */
export const RestPaging = z.discriminatedUnion('style', [
  z.object({ style: z.literal('none') }).strict(),
  z.object({ style: z.literal('page'), param: ParamName.default('page'), sizeParam: ParamName.default('per_page'), size: z.number().int().min(1).max(10_000).default(100), first: z.number().int().min(0).default(1) }).strict(),
  z.object({ style: z.literal('offset'), offsetParam: ParamName.default('offset'), limitParam: ParamName.default('limit'), size: z.number().int().min(1).max(10_000).default(100) }).strict(),
  /** The next token sits in the body at `nextPath` and goes back as `param`. */
  z.object({ style: z.literal('cursor'), nextPath: JsonPath, param: ParamName.default('cursor'), sizeParam: ParamName.optional(), size: z.number().int().min(1).max(10_000).default(100) }).strict(),
  /** RFC 8288 `Link: <…>; rel="next"`. */
  z.object({ style: z.literal('link'), sizeParam: ParamName.optional(), size: z.number().int().min(1).max(10_000).default(100) }).strict(),
  /** A full next URL in the body at `nextPath` (must stay on baseUrl's host: credentials go with it). */
  z.object({ style: z.literal('next'), nextPath: JsonPath, sizeParam: ParamName.optional(), size: z.number().int().min(1).max(10_000).default(100) }).strict(),
]);
export type RestPaging = z.infer<typeof RestPaging>;

export const RestEndpoint = z
  .object({
    /** The endpoint's id in fieldsync (its "form"): table name, cursor, schedules. */
    name: z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/, 'lowercase letters, digits, "-" and "_", starting with a letter'),
    /** `dictionary`: small, rarely changing, re-read whole and reconciled (vanished rows marked deleted); `data`: incremental. */
    kind: z.enum(['data', 'dictionary']).default('data'),
    /** Relative to baseUrl, e.g. `/api/v2/conversations`. */
    path: z.string().min(1),
    /** Fixed query parameters sent on every request. */
    query: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
    /** Where the records sit in the body (`data.items`); empty when the body is the array. */
    recordsPath: JsonPath.default(''),
    /** The field (or fields, for a composite key) that identify a record. */
    key: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    /** The record's last-change field (ISO time or a sortable value): the cursor's high-water mark. */
    updatedField: z.string().min(1).optional(),
    /** The query parameter that filters on it (`updated_since`): sent with the stored high-water mark. */
    updatedParam: ParamName.optional(),
    paging: RestPaging.default({ style: 'none' }),
    /** A JSONata expression applied to each page's records (an array) before loading; it must yield an array of objects. */
    transform: z.string().min(1).optional(),
  })
  .strict()
  .refine((e) => e.updatedParam === undefined || e.updatedField !== undefined, { message: '"updatedParam" needs "updatedField" (the field whose high-water mark it sends)', path: ['updatedParam'] });
export type RestEndpoint = z.infer<typeof RestEndpoint>;

/** How fieldsync authenticates to a REST API. */
export const RestAuth = z.union([
  z.object({ none: z.literal(true) }).strict(),
  /** A fixed header, e.g. `{ name: X-Api-Key, value: ${API_KEY} }`. */
  z.object({ header: z.object({ name: z.string().min(1), value: Secret }).strict() }).strict(),
  /** `Authorization: Bearer <token>`. */
  z.object({ bearer: Secret }).strict(),
  z.object({ basic: z.object({ username: z.string().min(1), password: Secret }).strict() }).strict(),
  /**
   * POST `{ [usernameField]: username, [passwordField]: password }` as JSON to `path`;
   * `tokenPath` in the answer is the bearer token. Logged in again before it expires
   * (`ttl`, else `expiresInPath` seconds from the answer) and once after a 401.
   */
  z.object({
    login: z.object({
      path: z.string().min(1),
      username: z.string().min(1),
      password: Secret,
      usernameField: z.string().min(1).default('username'),
      passwordField: z.string().min(1).default('password'),
      tokenPath: JsonPath.default('access_token'),
      expiresInPath: JsonPath.default('expires_in'),
      ttl: Duration.optional(),
      /** Log in again this long before the token expires. */
      refreshBefore: Duration.default(30_000),
    }).strict(),
  }).strict(),
]);
export type RestAuth = z.infer<typeof RestAuth>;

export const RestSource = z
  .object({
    ...SourceBase,
    kind: z.literal('rest'),
    auth: RestAuth.default({ none: true }),
    endpoints: z.array(RestEndpoint).min(1),
    /** Poll and sweep of `kind: dictionary` endpoints (each a full read): their own, slower schedule. */
    dictionarySchedule: Schedule.default({ every: 21_600_000 }),
  })
  .strict()
  .superRefine((s, ctx) => flagDuplicates(ctx, s.endpoints.map((e) => e.name), (i) => ['endpoints', i, 'name'], 'endpoint name'));
export type RestSourceConfig = z.infer<typeof RestSource>;

export const SocrataSource = z
  .object({
    ...SourceBase,
    kind: z.literal('socrata'),
    /** Dataset ids ("4x4": `jguv-t9rb`): each is synced like a form. */
    datasets: z.array(z.string().regex(/^[a-z0-9]{4}-[a-z0-9]{4}$/, 'a Socrata dataset id ("4x4"), e.g. "jguv-t9rb"')).min(1),
    /** `X-App-Token` (lifts the per-IP throttling); optional. */
    appToken: Secret.optional(),
    /** `$limit` per page: SODA 2.1 has no maximum, but big pages time out. */
    pageSize: z.number().int().min(1).max(50_000).default(10_000),
    /** The column whose high-water mark is the cursor (a business column such as `license_issue_date`); default the system field `:updated_at`. */
    updatedColumn: z.string().regex(/^:?[a-z_][a-z0-9_]*$/, 'a Socrata field name, e.g. "license_issue_date" or ":updated_at"').default(':updated_at'),
  })
  .strict();

export const SourceConfig = z.discriminatedUnion('kind', [KoboSource, OdkSource, RestSource, SocrataSource]);
export type SourceConfig = z.infer<typeof SourceConfig>;

/**
 * The "forms" a source syncs, whatever its kind calls them (Kobo/ODK forms, REST
 * endpoints, Socrata datasets); '*' = discovered from the source.
 */
export function sourceForms(source: SourceConfig): string[] | '*' {
  switch (source.kind) {
    case 'rest':
      return source.endpoints.map((e) => e.name);
    case 'socrata':
      return [...source.datasets];
    default:
      return source.forms;
  }
}

/** The poll and sweep schedules of one form: REST dictionaries have their own, slower one. */
export function formSchedules(source: SourceConfig, formId: string): { poll: Schedule; sweep: Schedule } {
  if (source.kind === 'rest' && source.endpoints.some((e) => e.name === formId && e.kind === 'dictionary')) {
    return { poll: source.dictionarySchedule, sweep: source.dictionarySchedule };
  }
  return { poll: source.poll, sweep: source.sweep };
}
export type KoboSourceConfig = z.infer<typeof KoboSource>;
export type OdkSourceConfig = z.infer<typeof OdkSource>;
export type SocrataSourceConfig = z.infer<typeof SocrataSource>;

export const FieldsyncConfig = z
  .object({
    sources: z.array(SourceConfig).min(1),
    ingest: z
      .object({
        /** Attempts per ingest job before it is dead-lettered. */
        attempts: z.number().int().min(1).max(50).default(8),
        backoffMs: z.number().int().positive().default(2_000),
        concurrency: z.number().int().min(1).max(64).default(4),
      })
      .strict()
      .default({ attempts: 8, backoffMs: 2_000, concurrency: 4 }),
    /** Attachment files copied to storage, on their own queue (off unless configured). */
    attachments: z
      .object({
        enabled: z.boolean().default(true),
        store: AttachmentStore.optional(),
        /** Files downloaded at once per loader. */
        concurrency: z.number().int().min(1).max(64).default(4),
        /** Attempts per file before it is dead-lettered. */
        attempts: z.number().int().min(1).max(50).default(5),
        backoffMs: z.number().int().positive().default(5_000),
        /** One download (headers to last byte); slow links need long ones. */
        timeoutMs: z.number().int().positive().default(600_000),
      })
      .strict()
      .optional(),
    /** Typed analyst tables built from the form definitions. */
    tables: z
      .object({
        enabled: z.boolean().default(true),
        /** PostgreSQL schema that holds them (created if missing). */
        schema: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'a schema name: lowercase letters, digits and "_"').default('fieldsync'),
        /** MySQL/MariaDB: prefix of their table names (MySQL has no schemas inside a database). */
        prefix: z.string().regex(/^[a-z0-9_]{0,20}$/, 'lowercase letters, digits and "_", at most 20').default(''),
      })
      .strict()
      .default({ enabled: true, schema: 'fieldsync', prefix: '' }),
  })
  .strict()
  .superRefine((c, ctx) => flagDuplicates(ctx, c.sources.map((s) => s.id), (i) => ['sources', i, 'id'], 'source id'));
export type FieldsyncConfig = z.infer<typeof FieldsyncConfig>;
