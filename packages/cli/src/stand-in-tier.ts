import {
  CAPABILITY_KEYS,
  createNoneProvider,
  type IsolationProvider,
  type Sandbox,
  TIER_STRENGTH,
  type TierName,
} from '@bulkhead/core';
import type { ModuleImporter } from './tiers.js';

/**
 * A stand-in for a tier package, for tests of the CLI's own behaviour through the importer seam: its
 * probe says it enforces everything, and it runs the command as an ordinary child process (it
 * isolates nothing), leaving `warnings` on the result as a real tier would.
 */
export function standInProvider(
  tier: TierName,
  options: { warnings?: string[]; available?: boolean } = {},
): IsolationProvider {
  const warnings = options.warnings ?? [];
  const none = createNoneProvider();
  return {
    specificationVersion: 'bulkhead-isolation-v1',
    tier,
    strength: TIER_STRENGTH[tier as keyof typeof TIER_STRENGTH] ?? 50,
    async probe() {
      return {
        tier,
        available: options.available ?? true,
        ...(options.available === false ? { reason: 'the stand-in is unavailable' } : {}),
        enforcement: Object.fromEntries(
          CAPABILITY_KEYS.map((key) => [key, { enforced: true, mechanisms: ['stand-in'] }]),
        ),
        facts: {},
        warnings: [],
      };
    },
    async launch(spec): Promise<Sandbox> {
      const sandbox = await none.launch(spec);
      return {
        ...sandbox,
        tier,
        exited: sandbox.exited.then((result) => ({ ...result, warnings })),
        kill: (signal) => sandbox.kill(signal),
        [Symbol.asyncDispose]: () => sandbox[Symbol.asyncDispose](),
      };
    },
  };
}

/**
 * An importer that serves the given tier packages by name and reports every other one as not
 * installed, recording what was asked for.
 */
export function standInImporter(modules: Record<string, Record<string, unknown>>): ModuleImporter & {
  imported: string[];
} {
  const imported: string[] = [];
  const importer = async (specifier: string) => {
    imported.push(specifier);
    const module = modules[specifier];
    if (module) return module;
    throw Object.assign(new Error(`Cannot find package '${specifier}'`), { code: 'ERR_MODULE_NOT_FOUND' });
  };
  return Object.assign(importer, { imported });
}
