import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { BulkheadError } from '@bulkhead/core';
import * as v from 'valibot';
import { durationSchema, endpointSchema, sizeSchema, tierSchema } from './schema.js';
import {
  type KeySegment,
  readSource,
  type SourceFormat,
  type SourceLocation,
  validateSource,
} from './source-document.js';

/** Where the organisation policy lives when `BULKHEAD_POLICY` does not say otherwise. */
export const DEFAULT_POLICY_PATH = '/etc/bulkhead/policy.yaml';

/** Schema version 1 of the organisation policy: a ceiling no manifest may exceed. */
export const PolicySchema = v.pipe(
  v.strictObject({
    $schema: v.optional(v.string()),
    version: v.literal(1, 'expected version: 1 (the only policy schema version)'),
    minimumTier: v.optional(
      v.pipe(
        tierSchema,
        v.description('Manifests may not ask for a weaker tier; without tier they get this one.'),
      ),
    ),
    maxMemory: v.optional(
      v.pipe(sizeSchema, v.description('Largest resources.memory a manifest may ask for.')),
    ),
    maxTimeout: v.optional(
      v.pipe(durationSchema, v.description('Longest resources.timeout a manifest may ask for.')),
    ),
    maxProcesses: v.optional(
      v.pipe(
        v.number('expected a whole number of processes'),
        v.integer('expected a whole number of processes'),
        v.minValue(1, 'expected at least 1 process'),
        v.description('Largest processes.max a manifest may ask for.'),
      ),
    ),
    internet: v.optional(
      v.pipe(
        v.picklist(['allowed', 'forbidden'], "expected 'allowed' or 'forbidden'"),
        v.description("'forbidden': no manifest may set network.internet: true."),
      ),
    ),
    allowedEndpoints: v.optional(
      v.pipe(
        v.array(endpointSchema, 'expected a list of endpoints'),
        v.description(
          'Every endpoint a manifest allows must fall within one of these; internet: true is refused.',
        ),
      ),
    ),
    deniedPaths: v.optional(
      v.pipe(
        v.array(
          v.pipe(
            v.string('expected a path'),
            v.minLength(1, 'a path cannot be empty'),
            v.check(
              (path) => !path.includes('${'),
              // biome-ignore lint/suspicious/noTemplateCurlyInString: the manifest's own ${...} syntax
              'a policy path cannot use ${...} variables; only ~ is expanded',
            ),
          ),
          'expected a list of paths',
        ),
        v.description(
          'Always denied, added to every manifest; a manifest may not grant anything inside them.',
        ),
      ),
    ),
  }),
  v.title('Bulkhead organisation policy'),
);

export type PolicyV1 = v.InferOutput<typeof PolicySchema>;

/** An organisation policy as read, able to say where each rule was written. */
export interface Policy {
  policy: PolicyV1;
  path?: string;
  source?: string;
  locate(keyPath: string | readonly KeySegment[], target?: 'key' | 'value'): SourceLocation | undefined;
}

const POLICY_FIX = 'ask the administrator who owns the policy file to correct the entries above';

/** Parses and validates a policy (YAML or JSON). Throws `POLICY_INVALID` with every problem located. */
export function parsePolicy(source: string, options: { path?: string; format?: SourceFormat } = {}): Policy {
  const located = readSource(source, { ...options, what: 'policy', code: 'POLICY_INVALID', fix: POLICY_FIX });
  const policy = validateSource(located, PolicySchema, {
    what: 'policy',
    code: 'POLICY_INVALID',
    fix: POLICY_FIX,
  });
  return {
    policy,
    ...(located.path === undefined ? {} : { path: located.path }),
    source,
    locate: located.locate,
  };
}

/** A policy built in code (no file): rules are reported without a location. */
export function createPolicy(policy: PolicyV1): Policy {
  return { policy: v.parse(PolicySchema, policy), locate: () => undefined };
}

function policyTarget(
  path: string | undefined,
  env: Record<string, string | undefined>,
): { path: string; explicit: boolean } {
  if (path !== undefined) return { path, explicit: true };
  const fromEnvironment = env.BULKHEAD_POLICY;
  if (fromEnvironment) return { path: fromEnvironment, explicit: true };
  return { path: DEFAULT_POLICY_PATH, explicit: false };
}

function readFailure(target: { path: string; explicit: boolean }, error: unknown): Policy | null {
  const code = (error as NodeJS.ErrnoException).code;
  if ((code === 'ENOENT' || code === 'ENOTDIR') && !target.explicit) return null;
  // A policy someone named but that cannot be read must not silently become "no policy".
  throw new BulkheadError(
    'POLICY_INVALID',
    `Cannot read the organisation policy ${target.path}: ${(error as Error).message}. Fix: ${code === 'ENOENT' ? 'create it, or unset BULKHEAD_POLICY' : "check the file's permissions"}.`,
    { path: target.path, cause: error },
  );
}

/**
 * The organisation policy: the file named by `path`, else `$BULKHEAD_POLICY`, else
 * `/etc/bulkhead/policy.yaml`. Only a missing default file means "no policy" (null); a file named
 * explicitly must exist.
 */
export async function loadPolicy(
  path?: string,
  env: Record<string, string | undefined> = process.env,
): Promise<Policy | null> {
  const target = policyTarget(path, env);
  let source: string;
  try {
    source = await readFile(resolve(target.path), 'utf8');
  } catch (error) {
    return readFailure(target, error);
  }
  return parsePolicy(source, { path: target.path });
}

/** `loadPolicy` for synchronous callers such as `compileManifest`. */
export function loadPolicySync(
  path?: string,
  env: Record<string, string | undefined> = process.env,
): Policy | null {
  const target = policyTarget(path, env);
  let source: string;
  try {
    source = readFileSync(resolve(target.path), 'utf8');
  } catch (error) {
    return readFailure(target, error);
  }
  return parsePolicy(source, { path: target.path });
}
