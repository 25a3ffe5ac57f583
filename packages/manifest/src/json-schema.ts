import { createRequire } from 'node:module';
import type { ConversionConfig } from '@valibot/to-json-schema';
import { PolicySchema } from './policy.js';
import { ManifestSchema } from './schema.js';

/** Where the published schema can be found, for `$schema` in manifests. */
export const MANIFEST_SCHEMA_ID = 'https://unpkg.com/@bulkhead/manifest/dist/manifest.schema.json';

/**
 * The converter, loaded when a schema is asked for (`bulkhead manifest schema`), not by every
 * `bulkhead run`. Its CommonJS build is self-contained, so it reads the same schema objects.
 */
function toJsonSchema(...parameters: Parameters<typeof import('@valibot/to-json-schema').toJsonSchema>) {
  const converter = createRequire(import.meta.url)(
    '@valibot/to-json-schema',
  ) as typeof import('@valibot/to-json-schema');
  return converter.toJsonSchema(...parameters);
}

const conversion: ConversionConfig = {
  errorMode: 'ignore',
  // Checks that need code (endpoint syntax, path variables) stay in Bulkhead; editors get the shape.
  ignoreActions: ['check'],
};

/**
 * The JSON Schema (draft-07) of manifest version 1, generated from the valibot schema that Bulkhead
 * itself validates with. Shipped as `@bulkhead/manifest/manifest.schema.json`.
 */
export function manifestJsonSchema(): Record<string, unknown> {
  const schema = toJsonSchema(ManifestSchema, conversion) as Record<string, unknown>;
  return { $schema: schema.$schema, $id: MANIFEST_SCHEMA_ID, ...schema };
}

/** The JSON Schema of the organisation policy file. */
export function policyJsonSchema(): Record<string, unknown> {
  return toJsonSchema(PolicySchema, conversion) as Record<string, unknown>;
}
