import { defineConfig } from 'vitest/config';
// The tests cut database connections on purpose; mariadb 3.4 then leaves one rejection
// unheld when a connection dies in its SET time_zone (see surviveDriverRejections in
// packages/sync/src/runtime.ts, which the apps install). Only that one is let through.
const driverSetupLoss = (err: unknown) => (err as { code?: string } | null)?.code === 'ER_WRONG_IANA_TIMEZONE';
export default defineConfig({ test: { onUnhandledError: (err) => !driverSetupLoss(err), testTimeout: 60_000, hookTimeout: 60_000, fileParallelism: false } });
