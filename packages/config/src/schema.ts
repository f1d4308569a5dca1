import { z } from 'zod';
import ms from 'ms';
import { CronExpressionParser } from 'cron-parser';

/** A secret: must be written as `${ENV_VAR}` in the file and is resolved from the environment. */
export const Secret = z.string().min(1);

const Duration = z
  .union([z.number().int().positive(), z.string()])
  .transform((v, ctx) => {
    if (typeof v === 'number') return v;
    let n: number | undefined;
    try {
      n = ms(v as ms.StringValue);
    } catch {
      n = undefined; // ms() throws on "" instead of returning undefined
    }
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
  let n: number | undefined;
  if (typeof v === 'string') {
    try {
      n = ms(v as ms.StringValue);
    } catch {
      n = undefined;
    }
  }
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

const SourceBase = {
  id: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'lowercase letters, digits, "-" and "_", at most 64'),
  baseUrl: z.url({ protocol: /^https?$/, message: 'Invalid URL (use http:// or https://)' }),
  poll: Schedule.default({ every: 300_000 }),
  /** Edit/delete/restore sweep (full key scan): less often than polls. */
  sweep: Schedule.default({ every: 3_600_000 }),
  pageSize: z.number().int().min(1).max(10_000).default(1000),
  /** Records per ingest job. */
  batchSize: z.number().int().min(1).max(5_000).default(500),
  http: HttpPolicy.default(HttpPolicy.parse({})),
  webhook: WebhookAuth.optional(),
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

export const SourceConfig = z.discriminatedUnion('kind', [KoboSource, OdkSource]);
export type SourceConfig = z.infer<typeof SourceConfig>;
export type KoboSourceConfig = z.infer<typeof KoboSource>;
export type OdkSourceConfig = z.infer<typeof OdkSource>;

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
  .superRefine((c, ctx) => {
    const seen = new Set<string>();
    c.sources.forEach((s, i) => {
      if (seen.has(s.id)) ctx.addIssue({ code: 'custom', path: ['sources', i, 'id'], message: `duplicate source id "${s.id}"` });
      seen.add(s.id);
    });
  });
export type FieldsyncConfig = z.infer<typeof FieldsyncConfig>;
