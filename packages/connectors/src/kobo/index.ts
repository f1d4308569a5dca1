export { KoboConnector, KOBO_MAX_PAGE, KOBO_REFETCH_CHUNK, type KoboCursor } from './kobo.connector.ts';
export { toCanonical, koboKey, koboVersion, koboTime, type KoboCanonicalContext, type KoboRecord } from './kobo.canonical.ts';
export { parseKoboWebhook } from './kobo.webhook.ts';
