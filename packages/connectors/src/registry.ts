import type { SourceConfig } from '@fieldsync/config';
import type { Logger } from '@fieldsync/logger';
import type { SourceConnector, WebhookParser, XmlWebhookParser } from './connector.ts';
import { KoboConnector, parseKoboWebhook, parseKoboXmlWebhook } from './kobo/index.ts';
import { OdkConnector } from './odk/index.ts';
import { SocrataConnector } from './socrata/index.ts';
import { RestConnector } from './rest/index.ts';

export interface ConnectorDeps {
  logger?: Logger;
  /** Each source HTTP request's status (see HttpClientOptions.onResponse). */
  onResponse?: (status: string) => void;
}

/** One place that maps a source kind to its connector. */
export function createConnector(source: SourceConfig, deps: ConnectorDeps = {}): SourceConnector {
  switch (source.kind) {
    case 'kobo':
      return new KoboConnector(source, deps);
    case 'odk':
      return new OdkConnector(source, deps);
    case 'socrata':
      return new SocrataConnector(source, deps);
    case 'rest':
      return new RestConnector(source, deps);
  }
}

/** How to read a kind's webhook bodies, by format. */
export interface WebhookParsers {
  json: WebhookParser;
  xml?: XmlWebhookParser;
}

/** Kinds that can push webhooks, and how to read their bodies. ODK Central has no outbound webhooks. */
export const WEBHOOK_PARSERS: Partial<Record<SourceConfig['kind'], WebhookParsers>> = {
  kobo: { json: parseKoboWebhook, xml: parseKoboXmlWebhook },
};
