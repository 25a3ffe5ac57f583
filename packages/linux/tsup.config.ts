import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  // Keep dist/native: sandboxes of other packages' test runs may be executing the shim while this
  // rebuilds; scripts/build-shim.mjs replaces it atomically (compile to a temporary file, rename).
  clean: ['!native/**'],
  target: 'node20',
});
