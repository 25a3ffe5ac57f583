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
  // The binary carries its own small third-party dependencies (commander, picocolors) in one file:
  // resolving and loading them as separate CommonJS modules is a measurable share of start-up.
  // yaml stays external: @bulkhead/manifest shares it.
  {
    ...shared,
    entry: ['src/cli.ts'],
    // commander is CommonJS: its require() of Node's built-ins needs a require inside an ES module.
    banner: {
      js: "#!/usr/bin/env node\nimport { createRequire as __bulkheadCreateRequire } from 'node:module';\nconst require = __bulkheadCreateRequire(import.meta.url);",
    },
    noExternal: ['commander', 'picocolors'],
  },
]);
