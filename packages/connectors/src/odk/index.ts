export { OdkConnector, parseOdkCursor } from './odk.connector.ts';
export type { OdkCursor, OdkConnectorDeps } from './odk.connector.ts';
export { OdkError } from './odk.client.ts';
export { toCanonical as odkRowToCanonical } from './odk.mapping.ts';
export { odkDefinition, odkFormVersion, parseXForm, OdkSchemaReader, sanitizeOdataIdentifier, type XFormInfo } from './odk.schema.ts';
export { OdkBasicAuth, OdkSessionAuth, type OdkAuthorizer } from './odk.auth.ts';
