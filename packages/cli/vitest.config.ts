import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { conditions: ['development'] },
  test: {
    include: ['src/**/*.test.ts'],
    globalSetup: ['./vitest.global-setup.ts'],
    // Sandboxes (and the real tiers' probes) take longer than vitest's 5 s default on a busy 2-core host.
    testTimeout: 30_000,
  },
});
