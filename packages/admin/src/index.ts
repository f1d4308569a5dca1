export * from './schemas.ts';
export * from './status.ts';
export * from './admin.ts';
export * from './api.ts';
export * from './service.ts';
export * from './openapi.ts';
export type { Credentials, Role, AdminLocals } from './auth.ts';
export { basicCredentials, safeEqual } from './auth.ts';
