import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { conditions: ['development'] },
  test: {
    include: ['src/**/*.test.ts'],
    // Real sandboxes, real X servers, real accounts: slower than unit tests on a 2-core machine.
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
