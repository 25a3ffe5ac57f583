import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { conditions: ['development'] },
  test: {
    include: ['src/**/*.test.ts'],
    // Real sandboxes, real X servers, real accounts: slower than unit tests on a 2-core machine.
    testTimeout: 60_000,
    // The conformance suite's dispose checks compare the host's mounts, cgroups and processes before
    // and after: sandboxes of another test file running meanwhile would read as leftovers.
    fileParallelism: false,
    hookTimeout: 120_000,
  },
});
