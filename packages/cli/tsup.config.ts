import { defineConfig } from 'tsup';

const shared = {
  format: ['esm'],
  sourcemap: true,
  target: 'node20',
  // Tiers are optional packages found at run time; they must never be bundled into the CLI.
  external: [/^@bulkhead\//],
} as const;

export default defineConfig([
  // Both configs build at once: this one cleans everything but the other's output.
  { ...shared, entry: ['src/index.ts'], dts: true, clean: ['!cli.js', '!cli.js.map'] },
  { ...shared, entry: ['src/cli.ts'], banner: { js: '#!/usr/bin/env node' } },
]);
