import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { conditions: ['development'] },
  test: {
    include: ['src/**/*.test.ts'],
    globalSetup: ['./src/test-support/global-setup.ts'],
    // Guests boot under TCG on hosts without usable KVM: seconds each, so generous limits.
    testTimeout: 120_000,
    hookTimeout: 900_000,
  },
});
