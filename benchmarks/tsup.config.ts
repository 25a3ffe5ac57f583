import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/main.ts', 'src/worker.ts'],
  format: ['esm'],
  // Private and never imported: no declarations. Peers and workspace packages stay external, so
  // each is measured as its own installed code.
  dts: false,
  sourcemap: true,
  clean: true,
  target: 'node20',
  skipNodeModulesBundle: true,
});
