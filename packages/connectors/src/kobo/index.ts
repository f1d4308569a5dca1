export { KoboConnector, KOBO_MAX_PAGE, KOBO_REFETCH_CHUNK, type KoboCursor } from './kobo.connector.ts';
export { toCanonical, koboKey, koboVersion, koboTime, type KoboCanonicalContext, type KoboRecord } from './kobo.canonical.ts';
export { parseKoboWebhook, unwrapKoboRecord, looksLikeKoboRecord } from './kobo.webhook.ts';
export { parseKoboXmlWebhook, koboXmlToRecord, MalformedXmlError, XmlTooDeepError } from './kobo.xml.ts';
export { koboDefinition, koboFormVersion, KoboSchemaReader } from './kobo.schema.ts';
