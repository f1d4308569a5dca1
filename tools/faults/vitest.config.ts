import { defineConfig } from 'vitest/config';
// One file at a time: each kills, stops and restarts real processes and services, and timing matters.
export default defineConfig({ test: { testTimeout: 240_000, hookTimeout: 120_000, fileParallelism: false } });
