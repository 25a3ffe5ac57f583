import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { conditions: ['development'] },
  test: {
    include: ['src/**/*.test.ts'],
    // The conformance suite checks the host for leftover mounts, cgroups and processes; sandboxes of
    // another test file running at the same time would read as this one's leftovers.
    fileParallelism: false,
  },
});
