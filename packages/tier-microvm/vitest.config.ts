import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { conditions: ['development'] },
  test: {
    include: ['src/**/*.test.ts'],
    globalSetup: ['./src/test-support/global-setup.ts'],
    // Guests boot under TCG on hosts without usable KVM: seconds each, so generous limits.
    testTimeout: 120_000,
    // One file at a time: the conformance suite compares the host's mount table before and after a
    // dispose, and VMs of a root caller mount id-mapped copies of their grants while they run.
    fileParallelism: false,
    hookTimeout: 900_000,
  },
});
