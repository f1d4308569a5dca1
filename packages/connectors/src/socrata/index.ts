export { SocrataConnector, soqlLiteral, type SocrataCursor } from './socrata.connector.ts';
export { socrataDefinition, keyField, SocrataView } from './socrata.schema.ts';
