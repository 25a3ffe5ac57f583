import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts', 'src/corpus.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  // Keep dist/native: test runs of other packages may be executing the helper while this rebuilds;
  // scripts/build-native.mjs replaces it atomically.
  clean: ['!native/**'],
  target: 'node20',
});
