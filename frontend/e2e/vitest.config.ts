import { defineConfig } from 'vitest/config';

// Browser end-to-end tests: one anvil + one Chromium shared by the scenarios of a file, run in order.
export default defineConfig({
  test: {
    include: ['e2e/**/*.e2e.ts'],
    environment: 'node',
    fileParallelism: false,
    sequence: { concurrent: false },
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['verbose'],
  },
});
