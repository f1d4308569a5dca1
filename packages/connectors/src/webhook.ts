import type { SourceConfig } from '@fieldsync/config';
import type { CanonicalSubmission } from '@fieldsync/model';
import { PayloadError, type WebhookHints } from './connector.ts';
import { MAX_JSON_DEPTH, jsonTextDepthExceeds } from './depth.ts';
import { MalformedXmlError, XmlTooDeepError } from './kobo/kobo.xml.ts';
import { WEBHOOK_PARSERS } from './registry.ts';

export type WebhookFormat = 'json' | 'xml';

/** The body formats webhooks may use, from the Content-Type; null for any other. */
export function webhookFormat(contentType: string | undefined): WebhookFormat | null {
  const t = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (t === 'application/json' || /^application\/[\w.+-]+\+json$/.test(t)) return 'json';
  if (t === 'application/xml' || t === 'text/xml' || /^(application|text)\/[\w.+-]+\+xml$/.test(t)) return 'xml';
  return null;
}

/** A body refused outright (the sender must fix it): malformed, or nested too deep. */
export class WebhookBodyError extends Error {
  override name = 'WebhookBodyError';
  constructor(
    readonly code: 'malformed_json' | 'malformed_xml' | 'too_deep' | 'unsupported_media_type',
    message: string,
  ) {
    super(message);
  }
}

/** What a body turned into: submissions, or why no parser understands it (it is then kept as a dead letter). */
export type WebhookReading = { submissions: CanonicalSubmission[]; unparsed?: undefined } | { unparsed: string; submissions?: undefined };

/**
 * Reads one authenticated webhook body with the source's parser. Throws
 * WebhookBodyError for what is refused (not JSON/XML at all, deeper than
 * MAX_JSON_DEPTH); a well-formed body that no parser understands comes back
 * as `unparsed` with the reason: senders such as Kobo never retry a 4xx, so
 * such a body is kept rather than refused. The loader calls this again (with
 * its own, maybe newer, config) for a kept body.
 */
export function readWebhookBody(
  source: SourceConfig,
  input: { body: string; contentType: string | undefined },
  receivedAt: Date,
  hints: Pick<WebhookHints, 'formId' | 'repeatPaths'> = {},
): WebhookReading {
  const parsers = WEBHOOK_PARSERS[source.kind];
  const format = webhookFormat(input.contentType);
  if (!format) throw new WebhookBodyError('unsupported_media_type', `Content-Type must be application/json or application/xml, got "${input.contentType ?? '(none)'}"`);
  if (!parsers) return { unparsed: `source "${source.id}" (${source.kind}) has no webhook parser` };
  const all: WebhookHints = { ...hints, recordPath: source.webhook?.recordPath };
  try {
    if (format === 'xml') {
      if (!parsers.xml) return { unparsed: `source "${source.id}" (${source.kind}) has no XML webhook parser` };
      return { submissions: parsers.xml(source.id, input.body, receivedAt, all) };
    }
    if (jsonTextDepthExceeds(input.body)) throw new WebhookBodyError('too_deep', `JSON nests deeper than ${MAX_JSON_DEPTH} levels (objects and arrays), the most fieldsync stores`);
    let json: unknown;
    try {
      json = JSON.parse(input.body);
    } catch (err) {
      throw new WebhookBodyError('malformed_json', `body is not valid JSON: ${(err as Error).message}`);
    }
    return { submissions: parsers.json(source.id, json, receivedAt, all) };
  } catch (err) {
    if (err instanceof PayloadError) return { unparsed: err.message };
    if (err instanceof MalformedXmlError) throw new WebhookBodyError('malformed_xml', err.message);
    if (err instanceof XmlTooDeepError) throw new WebhookBodyError('too_deep', err.message);
    throw err;
  }
}
