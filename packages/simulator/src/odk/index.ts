export { OdkSimulator, startOdkSimulator } from './odk.server.ts';
export type { OdkSimulatorOptions, OdkFault, OdkRequestLogEntry, OdkTime, CreateSubmissionOptions, MutateOptions } from './odk.server.ts';
export { HOUSEHOLD_FORM, toODataRow } from './odk.data.ts';
export type { OdkField, OdkFieldType, OdkFormSpec, OdkAnswers, OdkReviewState, OdkLabel } from './odk.data.ts';
export { formFields as odkFormFields, xform as odkXform, type OdkFieldEntry } from './odk.xform.ts';
export { encodeSkiptoken, decodeSkiptoken } from './odk.odata.ts';
