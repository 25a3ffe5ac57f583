import * as v from 'valibot';
import { parseEndpoint } from './endpoint.js';
import { checkPathSyntax } from './paths.js';
import { DURATION_PATTERN, parseDuration, parseSize, SIZE_PATTERN } from './units.js';

/** The tiers a manifest may ask for as its minimum. */
export const MANIFEST_TIERS = ['process', 'session', 'microvm', 'wsl'] as const;

export const SIZE_EXPECTED = 'a size such as 512MB, 1GiB, or a number of megabytes';
export const DURATION_EXPECTED = 'a duration such as 30s, 5m, 1h30m, or a number of seconds';
export const ENDPOINT_EXPECTED =
  'an endpoint such as api.example.com:443, *.example.com:443, 10.0.0.0/8, [::1]:8080 (no port means 443 and 80)';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

const pathSchema = v.pipe(
  v.string('expected a path (a string)'),
  v.minLength(1, 'a path cannot be empty'),
  v.check((path) => !path.includes('\0'), 'a path cannot contain a NUL byte'),
  v.check(
    (path) => checkPathSyntax(path) === undefined,
    (issue) => checkPathSyntax(String(issue.input)) ?? 'invalid path',
  ),
);

const pathList = (description: string) =>
  v.pipe(v.array(pathSchema, 'expected a list of paths'), v.description(description));

export const sizeSchema = v.pipe(
  v.union(
    [
      v.pipe(v.number(), v.gtValue(0, `expected ${SIZE_EXPECTED}, greater than 0`)),
      v.pipe(
        v.string(),
        v.regex(SIZE_PATTERN, `expected ${SIZE_EXPECTED}`),
        v.check((size) => parseSize(size) !== undefined, `expected ${SIZE_EXPECTED}, greater than 0`),
      ),
    ],
    `expected ${SIZE_EXPECTED}`,
  ),
  v.examples(['512MB', '1GiB', 2048]),
);

export const durationSchema = v.pipe(
  v.union(
    [
      v.pipe(v.number(), v.gtValue(0, `expected ${DURATION_EXPECTED}, greater than 0`)),
      v.pipe(
        v.string(),
        v.regex(DURATION_PATTERN, `expected ${DURATION_EXPECTED}`),
        v.check(
          (duration) => parseDuration(duration) !== undefined,
          `expected ${DURATION_EXPECTED}, greater than 0`,
        ),
      ),
    ],
    `expected ${DURATION_EXPECTED}`,
  ),
  v.examples(['30s', '5m', '1h', 600]),
);

export const endpointSchema = v.pipe(
  v.string(`expected ${ENDPOINT_EXPECTED}`),
  v.check(
    (endpoint) => parseEndpoint(endpoint).ok,
    (issue) => {
      const result = parseEndpoint(String(issue.input));
      return `${result.ok ? 'invalid endpoint' : result.reason}; expected ${ENDPOINT_EXPECTED}`;
    },
  ),
  v.examples(['api.example.com:443', '*.githubusercontent.com:443', '10.0.0.0/8:5432', '[::1]:8080']),
);

export const tierSchema = v.pipe(
  v.picklist(MANIFEST_TIERS, `expected one of ${MANIFEST_TIERS.join(', ')}`),
  v.description('The weakest tier this manifest accepts; the weakest available tier at or above it runs it.'),
);

const booleanOf = (description: string) =>
  v.pipe(v.boolean('expected true or false'), v.description(description));

/** Schema version 1 of the Bulkhead manifest. Every object is strict: unknown keys are errors. */
export const ManifestSchema = v.pipe(
  v.strictObject({
    $schema: v.optional(
      v.pipe(
        v.string('expected a URL or path of the JSON Schema'),
        v.description('JSON Schema for editors; ignored by Bulkhead.'),
      ),
    ),
    version: v.pipe(
      v.literal(1, 'expected version: 1 (the only manifest schema version)'),
      v.description('Manifest schema version; always 1.'),
    ),
    tier: v.optional(tierSchema),
    filesystem: v.optional(
      v.pipe(
        v.strictObject(
          {
            read: v.optional(pathList('Paths the sandbox may read and execute, added to the defaults.')),
            write: v.optional(pathList('Paths the sandbox may read and write, added to the defaults.')),
            deny: v.optional(pathList('Paths hidden from the sandbox, even inside a granted folder.')),
          },
          'expected a mapping with read, write and deny lists',
        ),
        v.description(
          // biome-ignore lint/suspicious/noTemplateCurlyInString: the manifest's own ${...} syntax
          'Relative paths resolve against the manifest folder; ~, ${env:NAME} and ${workspace} expand. The most specific path wins; at equal paths deny > read > write.',
        ),
      ),
    ),
    network: v.optional(
      v.strictObject(
        {
          internet: v.optional(booleanOf('true: the whole network. Cannot be combined with allow.')),
          allow: v.optional(
            v.pipe(
              v.array(endpointSchema, 'expected a list of endpoints'),
              v.description('The only endpoints the sandbox may connect to (TCP).'),
            ),
          ),
        },
        'expected a mapping with internet and/or allow',
      ),
    ),
    processes: v.optional(
      v.strictObject(
        {
          spawn: v.optional(booleanOf('May the payload start other processes? Default true.')),
          max: v.optional(
            v.pipe(
              v.number('expected a whole number of processes'),
              v.integer('expected a whole number of processes'),
              v.minValue(1, 'expected at least 1 process'),
              v.description('Most processes and threads alive at once. Default 256.'),
            ),
          ),
        },
        'expected a mapping with spawn and/or max',
      ),
    ),
    resources: v.optional(
      v.strictObject(
        {
          memory: v.optional(
            v.pipe(sizeSchema, v.description('Memory cap of the whole sandbox. Default 1GiB.')),
          ),
          timeout: v.optional(v.pipe(durationSchema, v.description('Wall-clock limit. Default 10m.'))),
          cpus: v.optional(
            v.pipe(
              v.number('expected a number of CPUs such as 0.5 or 2'),
              v.gtValue(0, 'expected a number of CPUs greater than 0'),
              v.description('CPU bandwidth in CPUs (0.5 = half of one). Default: unlimited.'),
            ),
          ),
          gpus: v.optional(
            v.pipe(
              v.union(
                [
                  v.picklist(['none', 'all']),
                  v.pipe(
                    v.array(
                      v.pipe(
                        v.number('expected GPU indices (whole numbers from 0)'),
                        v.integer('expected GPU indices (whole numbers from 0)'),
                        v.minValue(0, 'expected GPU indices (whole numbers from 0)'),
                      ),
                    ),
                    v.minLength(1, "expected at least one GPU index; use 'none' for no GPU"),
                  ),
                ],
                "expected 'none', 'all' or a list of GPU indices",
              ),
              v.description("GPUs the sandbox may use: 'none' (default), 'all' or indices."),
            ),
          ),
        },
        'expected a mapping with memory, timeout, cpus and/or gpus',
      ),
    ),
    devices: v.optional(
      v.strictObject(
        {
          clipboard: v.optional(booleanOf('Clipboard access. Default false.')),
          audio: v.optional(booleanOf('Sound devices. Default false.')),
          webcam: v.optional(booleanOf('Cameras. Default false.')),
          display: v.optional(booleanOf('A display. Default false.')),
          input: v.optional(booleanOf('Input devices and input injection. Default false.')),
        },
        'expected a mapping of device names to true or false',
      ),
    ),
    env: v.optional(
      v.strictObject(
        {
          inherit: v.optional(
            v.pipe(
              v.array(
                v.pipe(
                  v.string('expected an environment variable name'),
                  v.regex(ENV_NAME, 'expected an environment variable name (letters, digits, _)'),
                ),
                'expected a list of environment variable names',
              ),
              v.description('Variables passed through from the caller when set. Default: LANG, TERM.'),
            ),
          ),
          set: v.optional(
            v.pipe(
              v.record(
                v.pipe(
                  v.string(),
                  v.regex(ENV_NAME, 'expected an environment variable name (letters, digits, _)'),
                ),
                v.union([v.string(), v.number(), v.boolean()], 'expected a string value'),
                'expected a mapping of NAME: value',
              ),
              // biome-ignore lint/suspicious/noTemplateCurlyInString: the manifest's own ${...} syntax
              v.description('Variables set in the sandbox; ${env:NAME} expands from the caller.'),
            ),
          ),
        },
        'expected a mapping with inherit and/or set',
      ),
    ),
    identity: v.optional(
      v.strictObject(
        {
          name: v.pipe(
            v.string('expected an identity name'),
            v.regex(
              /^[a-z_][a-z0-9_-]{0,31}$/,
              'expected an identity name: lower-case letters, digits, _ and -, at most 32',
            ),
            v.description('Identity the session tier binds the sandbox to.'),
          ),
        },
        'expected a mapping with name',
      ),
    ),
  }),
  v.title('Bulkhead manifest'),
  v.description('What a Bulkhead sandbox may do. Everything not granted here is denied.'),
);

/** The raw parsed manifest document, as written (sizes and durations not yet converted). */
export type ManifestV1 = v.InferOutput<typeof ManifestSchema>;

/** Dotted key paths of every known key: unknown-key suggestions come from here. */
export function knownKeys(schema: v.GenericSchema): Map<string, string[]> {
  const keys = new Map<string, string[]>();
  const visit = (node: v.GenericSchema, prefix: string) => {
    const inner = unwrap(node);
    if (inner.type === 'strict_object' || inner.type === 'object') {
      const entries = (inner as unknown as { entries: Record<string, v.GenericSchema> }).entries;
      keys.set(prefix, Object.keys(entries));
      for (const [key, child] of Object.entries(entries)) visit(child, prefix ? `${prefix}.${key}` : key);
    }
  };
  visit(schema, '');
  return keys;
}

function unwrap(schema: v.GenericSchema): v.GenericSchema {
  let node = schema as v.GenericSchema & { wrapped?: v.GenericSchema; pipe?: v.GenericSchema[] };
  for (;;) {
    if (node.wrapped) node = node.wrapped as typeof node;
    else if (node.pipe?.[0] && node.pipe[0] !== node) node = node.pipe[0] as typeof node;
    else return node;
  }
}
