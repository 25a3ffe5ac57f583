import { writeFile } from 'node:fs/promises';
import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  // The JSON Schema ships beside the code, generated from the same valibot schema Bulkhead validates with.
  async onSuccess() {
    const { manifestJsonSchema } = await import('./src/json-schema.js');
    await writeFile('dist/manifest.schema.json', `${JSON.stringify(manifestJsonSchema(), null, 2)}\n`);
  },
});
