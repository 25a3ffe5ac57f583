import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { manifestJsonSchema, policyJsonSchema } from './json-schema.js';
import { starterManifest } from './starter-manifest.js';

type Schema = Record<string, unknown>;

/**
 * A small draft-07 checker for the keywords the generated schema uses, as an editor would apply
 * them. Returns the JSON pointers of the values that do not fit; it throws on a keyword it does not
 * know, so that a schema change cannot make it silently lenient.
 */
function check(schema: Schema, value: unknown, pointer = ''): string[] {
  const known = new Set([
    '$schema',
    '$id',
    'title',
    'description',
    'examples',
    'type',
    'properties',
    'required',
    'additionalProperties',
    'propertyNames',
    'items',
    'enum',
    'const',
    'anyOf',
    'pattern',
    'minimum',
    'exclusiveMinimum',
    'minLength',
    'minItems',
  ]);
  for (const keyword of Object.keys(schema))
    if (!known.has(keyword)) throw new Error(`unknown keyword ${keyword}`);
  const errors: string[] = [];
  const fail = (why: string) => errors.push(`${pointer || '/'}: ${why}`);
  if (schema.anyOf) {
    if (!(schema.anyOf as Schema[]).some((option) => check(option, value, pointer).length === 0))
      fail('no anyOf option fits');
    return errors;
  }
  const type = schema.type as string | undefined;
  const actual = Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value;
  if (type === 'integer' ? !Number.isInteger(value) : type !== undefined && actual !== type)
    return [`${pointer || '/'}: not ${type}`];
  if ('const' in schema && value !== schema.const) fail(`not ${JSON.stringify(schema.const)}`);
  if (schema.enum && !(schema.enum as unknown[]).includes(value)) fail('not in enum');
  if (typeof value === 'string') {
    if (schema.pattern && !new RegExp(schema.pattern as string, 'u').test(value))
      fail(`does not match ${schema.pattern}`);
    if (schema.minLength !== undefined && value.length < (schema.minLength as number)) fail('too short');
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < (schema.minimum as number)) fail('below minimum');
    if (schema.exclusiveMinimum !== undefined && value <= (schema.exclusiveMinimum as number))
      fail('not above exclusiveMinimum');
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < (schema.minItems as number)) fail('too few items');
    if (schema.items) {
      for (const [index, item] of value.entries())
        errors.push(...check(schema.items as Schema, item, `${pointer}/${index}`));
    }
  } else if (actual === 'object') {
    const object = value as Record<string, unknown>;
    const properties = (schema.properties ?? {}) as Record<string, Schema>;
    for (const key of (schema.required ?? []) as string[]) if (!(key in object)) fail(`missing ${key}`);
    for (const [key, item] of Object.entries(object)) {
      if (schema.propertyNames)
        errors.push(...check(schema.propertyNames as Schema, key, `${pointer}/${key}`));
      if (properties[key]) errors.push(...check(properties[key], item, `${pointer}/${key}`));
      else if (schema.additionalProperties === false) fail(`unknown property ${key}`);
      else if (typeof schema.additionalProperties === 'object') {
        errors.push(...check(schema.additionalProperties as Schema, item, `${pointer}/${key}`));
      }
    }
  }
  return errors;
}

const EXAMPLES = resolve(dirname(fileURLToPath(import.meta.url)), '../../../examples');

describe('manifestJsonSchema', () => {
  const schema = manifestJsonSchema();

  it('is draft-07 with an $id, strict objects and version 1 required', () => {
    expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
    expect(schema.$id).toMatch(/manifest\.schema\.json$/);
    expect(schema.required).toEqual(['version']);
    expect(schema.additionalProperties).toBe(false);
    expect((schema.properties as Record<string, Schema>).version).toMatchObject({ const: 1 });
  });

  it.each(readdirSync(EXAMPLES).filter((name) => /\.(ya?ml|json)$/.test(name) && name !== 'mxc-config.json'))(
    'accepts examples/%s',
    (name) => {
      expect(check(schema, parseYaml(readFileSync(join(EXAMPLES, name), 'utf8')))).toEqual([]);
    },
  );

  it('accepts the starter manifest', () => {
    expect(check(schema, parseYaml(starterManifest()))).toEqual([]);
  });

  it('refuses what Bulkhead refuses: unknown keys, wrong types, bad sizes and durations, bad tiers', () => {
    expect(check(schema, { version: 1, netwrok: {} })).toEqual(['/: unknown property netwrok']);
    expect(check(schema, { version: 2 })).toEqual(['/version: not 1']);
    expect(check(schema, {})).toEqual(['/: missing version']);
    expect(check(schema, { version: 1, network: { internet: 'yes' } })).toEqual([
      '/network/internet: not boolean',
    ]);
    expect(check(schema, { version: 1, resources: { memory: '5 gigs' } })).toEqual([
      '/resources/memory: no anyOf option fits',
    ]);
    expect(check(schema, { version: 1, resources: { memory: '512MB', timeout: '1h30m' } })).toEqual([]);
    expect(check(schema, { version: 1, resources: { timeout: 'soon' } })).toEqual([
      '/resources/timeout: no anyOf option fits',
    ]);
    expect(check(schema, { version: 1, tier: 'sesion' })).toEqual(['/tier: not in enum']);
    expect(check(schema, { version: 1, processes: { max: 0 } })).toEqual(['/processes/max: below minimum']);
    expect(check(schema, { version: 1, env: { set: { 'BAD-NAME': 'x' } } })).toEqual([
      '/env/set/BAD-NAME: does not match ^[A-Za-z_][A-Za-z0-9_]*$',
    ]);
  });

  it('documents fields for editors', () => {
    const properties = schema.properties as Record<string, Schema>;
    expect(properties.tier?.description).toContain('weakest tier');
    expect((properties.resources!.properties as Record<string, Schema>).memory?.examples).toContain('1GiB');
  });
});

describe('policyJsonSchema', () => {
  it('describes the policy file', () => {
    const schema = policyJsonSchema();
    expect(
      check(schema, { version: 1, maxMemory: '2GiB', internet: 'forbidden', deniedPaths: ['~/.ssh'] }),
    ).toEqual([]);
    expect(check(schema, { version: 1, maxMemmory: '2GiB' })).toEqual(['/: unknown property maxMemmory']);
  });
});
