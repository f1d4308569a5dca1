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

/** How a webhook sender proves who it is. Kobo REST Services send Basic auth or custom headers. */
export const WebhookAuth = z.union([
  z.object({ token: Secret, header: z.string().min(1).default('x-fieldsync-token') }).strict(),
  z.object({ basic: z.object({ username: z.string().min(1), password: Secret }).strict() }).strict(),
  z.object({ hmac: z.object({ secret: Secret, header: z.string().default('x-fieldsync-signature') }).strict() }).strict(),
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
};

export const KoboSource = z
  .object({
    ...SourceBase,
    kind: z.literal('kobo'),
    token: Secret,
    /** Asset uids. */
    forms: z.array(z.string().min(1)).min(1),
    /** Re-read this many `_id`s below the cursor: a smaller `_id` can appear after a larger one. */
    overlap: z.number().int().min(0).default(100),
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
